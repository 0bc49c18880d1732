"""Semantic image embeddings trained with the triplet ranking losses of Gordo & Larlus (2017).

``phi`` projects backbone features into a D-dimensional space (an MLP, outputs L2-normalised);
``theta`` projects a text vector (the image's stemmed tf-idf, or its sentence-transformers
embedding) into the same space. Triplets (query q, relevant d+, irrelevant d-) are drawn from
the tf-idf similarity of the training texts: d+ among the query's top ``positives`` texts, d-
among the rest. Losses, with margin m:

* Eq. (1) visual: ``max(0, m - phi_q.phi_+ + phi_q.phi_-) / 2`` (the (V, .) models);
* Eq. (2)-(3) joint: the same with ``theta`` on either side (the (V+T, .) models), so images
  retrieve texts and texts retrieve images, and a query may add text to an image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from core.checkpoint import load_checkpoint, load_module_tensors, module_tensors, save_checkpoint
from core.progress import ProgressFn, silent
from core.vectors import l2n


@dataclass
class RetrievalConfig:
    """Hyper-parameters of a semantic embedding.

    Attributes:
        dim: embedding size D.
        hidden: hidden width of the visual MLP.
        joint: train the text projection too (Eq. 2-3), the (V+T, .) models.
        margin: triplet margin m.
        positives: d+ is drawn among each query's top-``positives`` tf-idf neighbours.
        epochs: passes over the training queries (one triplet per query per pass).
        batch_size, lr, weight_decay: Adam settings.
        seed: seed of initialisation and triplet draws.
    """

    dim: int = 256
    hidden: int = 1024
    joint: bool = True
    margin: float = 0.1
    positives: int = 10
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    seed: int = 0


class _Net(torch.nn.Module):
    """``phi(x) = l2n(P x + MLP(x))``: a linear map (initialised to the training features' top
    principal directions, so training starts from the raw features' geometry) plus a residual
    MLP whose last layer starts at zero; ``theta(t) = l2n(W t)``."""

    def __init__(self, visual_dim: int, text_dim: int, cfg: RetrievalConfig) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(visual_dim, cfg.dim)
        self.phi = torch.nn.Sequential(
            torch.nn.Linear(visual_dim, cfg.hidden), torch.nn.ReLU(), torch.nn.Linear(cfg.hidden, cfg.dim)
        )
        self.theta = torch.nn.Linear(text_dim, cfg.dim, bias=False)

    def init_from_pca(self, x: torch.Tensor) -> None:
        mean = x.mean(0)
        _, _, v = torch.linalg.svd(x - mean, full_matrices=False)
        k = min(v.shape[0], self.linear.out_features)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[:k] = v[:k]
            self.linear.bias.copy_(-(self.linear.weight @ mean))
            self.phi[-1].weight.zero_()
            self.phi[-1].bias.zero_()

    def visual(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.linear(x) + self.phi(x), dim=1)

    def text(self, t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.theta(t), dim=1)


def top_positives(tfidf: sparse.csr_matrix, k: int, chunk: int = 2048) -> np.ndarray:
    """(N, k) indices of each row's most tf-idf-similar other rows (-1 where none is similar)."""
    n = tfidf.shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    for s in range(0, n, chunk):
        sim = (tfidf[s : s + chunk] @ tfidf.T).toarray()
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -1.0
        top = np.argsort(-sim, axis=1)[:, :k]
        good = np.take_along_axis(sim, top, axis=1) > 0
        out[s : s + chunk] = np.where(good, top, -1)
    return out


class SemanticEmbedding:
    """A trained ``phi`` (and ``theta`` when joint)."""

    def __init__(self, net: _Net, config: RetrievalConfig, visual_dim: int, text_dim: int) -> None:
        self.net = net.eval()
        self.config = config
        self.visual_dim, self.text_dim = visual_dim, text_dim

    @classmethod
    def fit(
        cls,
        visual: np.ndarray,
        text: np.ndarray,
        tfidf: sparse.csr_matrix,
        config: RetrievalConfig | None = None,
        *,
        progress: ProgressFn = silent,
    ) -> SemanticEmbedding:
        """Train on rows with features ``visual``, text vectors ``text`` and tf-idf rows ``tfidf``
        (the ground-truth similarity)."""
        cfg = config or RetrievalConfig()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        pos = top_positives(tfidf, cfg.positives)
        queries = np.flatnonzero((pos >= 0).any(1))
        if len(queries) < 2:
            raise ValueError("semantic retrieval needs training images whose texts share words")
        x = torch.from_numpy(l2n(visual))
        t = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))
        net = _Net(x.shape[1], t.shape[1], cfg)
        net.init_from_pca(x)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = len(x)
        for epoch in range(cfg.epochs):
            progress("semantic embedding", epoch, cfg.epochs)
            net.train()
            order = rng.permutation(queries)
            for b in range(0, len(order), cfg.batch_size):
                q = order[b : b + cfg.batch_size]
                cand = pos[q]
                pick = np.array([rng.choice(row[row >= 0]) for row in cand])
                neg = rng.integers(0, n, len(q))
                clash = (cand == neg[:, None]).any(1) | (neg == q)
                neg[clash] = rng.integers(0, n, int(clash.sum()))  # one redraw; a rare clash left is noise
                loss = cls._loss(net, x, t, q, pick, neg, cfg)
                opt.zero_grad()
                loss.backward()
                opt.step()
        progress("semantic embedding", cfg.epochs, cfg.epochs)
        return cls(net, cfg, x.shape[1], t.shape[1])

    @staticmethod
    def _loss(net: _Net, x, t, q, p, n, cfg: RetrievalConfig) -> torch.Tensor:
        vq, vp, vn = net.visual(x[q]), net.visual(x[p]), net.visual(x[n])

        def hinge(a, b, c):
            return 0.5 * torch.clamp(cfg.margin - (a * b).sum(1) + (a * c).sum(1), min=0).mean()

        loss = hinge(vq, vp, vn)  # Eq. (1)
        if cfg.joint:
            tq, tp, tn = net.text(t[q]), net.text(t[p]), net.text(t[n])
            loss = loss + hinge(vq, tp, tn) + hinge(tq, vp, vn)  # Eq. (2), (3)
        return loss

    @torch.inference_mode()
    def embed_visual(self, visual: np.ndarray, batch: int = 8192) -> np.ndarray:
        parts = [self.net.visual(torch.from_numpy(l2n(visual[i : i + batch]))).numpy() for i in range(0, len(visual), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.dim), np.float32)

    @torch.inference_mode()
    def embed_text(self, text: np.ndarray) -> np.ndarray:
        if not self.config.joint:
            raise ValueError("this embedding was trained on images only (V): it cannot embed text")
        return self.net.text(torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))).numpy()

    def save(self, folder: str | Path, name: str) -> None:
        meta = {"config": asdict(self.config), "visual_dim": self.visual_dim, "text_dim": self.text_dim}
        save_checkpoint(folder, name, module_tensors(self.net), meta)

    @classmethod
    def load(cls, folder: str | Path, name: str) -> SemanticEmbedding:
        tensors, meta = load_checkpoint(folder, name)
        cfg = RetrievalConfig(**meta["config"])
        net = _Net(meta["visual_dim"], meta["text_dim"], cfg)
        load_module_tensors(net, tensors)
        return cls(net, cfg, meta["visual_dim"], meta["text_dim"])
