"""Neighbourhood models (Tesan, Coscia & Ballan, Section 3): visual-only, LTN, LTwin, with max
pooling or an LSTM (RTN / LTwin+RNN) over the ordered neighbours.

* visual-only: ``W_y relu(W_x phi(x))``.
* LTN: ``W_y [v_x; v_z]``, ``v_z = max_i relu(W_z phi(z_i))`` over the m neighbours (Eq. 9-11).
* LTwin: ``W_y [v_x; v_z; u_x; u_z]`` with separate branches for the image's and the
  neighbours' tag vectors ``pi(o)`` (Eq. 17).

Training samples one neighbourhood of m out of the M nearest per image and epoch (kept in
distance order); prediction averages over sampled neighbourhoods (Eq. 2).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, load_module_tensors, module_tensors, save_checkpoint
from core.progress import ProgressFn, silent

KINDS = ("visual_only", "ltn", "ltwin")


@dataclass
class TagModelConfig:
    """Architecture and training of one neighbourhood model.

    Attributes:
        kind: ``visual_only``, ``ltn`` or ``ltwin``.
        m: neighbours per neighbourhood; ``big_m``: the M nearest they are drawn from.
        pool: ``max`` (LTN, LTwin) or ``lstm`` (RTN, LTwin+RNN).
        hidden: width h of every branch (the paper: 500).
        dropout, lr, weight_decay, epochs, batch_size: training (Adam).
        samples: neighbourhoods averaged at prediction time.
        seed: seed of initialisation and neighbourhood draws.
    """

    kind: str = "ltwin"
    m: int = 12
    big_m: int = 24
    pool: str = "max"
    hidden: int = 500
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 3e-4
    epochs: int = 30
    batch_size: int = 64
    samples: int = 10
    seed: int = 0


class _Branch(torch.nn.Module):
    """relu(W x) per neighbour, pooled over the ordered neighbours (max or LSTM)."""

    def __init__(self, in_dim: int, hidden: int, pool: str) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_dim, hidden)
        self.pool = pool
        self.rnn = torch.nn.LSTM(hidden, hidden, batch_first=True) if pool == "lstm" else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, m, d) -> (B, h)
        h = torch.relu(self.fc(z))
        if self.rnn is None:
            return h.max(1).values
        _, (last, _) = self.rnn(h)
        return last[-1]


class TagNet(torch.nn.Module):
    def __init__(self, visual_dim: int, tag_dim: int, n_out: int, cfg: TagModelConfig) -> None:
        super().__init__()
        if cfg.kind not in KINDS:
            raise ValueError(f"unknown model kind {cfg.kind!r}; one of {KINDS}")
        self.kind = cfg.kind
        h = cfg.hidden
        self.vx = torch.nn.Linear(visual_dim, h)
        width = h
        if cfg.kind in ("ltn", "ltwin"):
            self.vz = _Branch(visual_dim, h, cfg.pool)
            width += h
        if cfg.kind == "ltwin":
            self.ux = torch.nn.Linear(tag_dim, h)
            self.uz = _Branch(tag_dim, h, cfg.pool)
            width += 2 * h
        self.drop = torch.nn.Dropout(cfg.dropout)
        self.out = torch.nn.Linear(width, n_out)

    def forward(self, x, z, tx, tz) -> torch.Tensor:
        parts = [torch.relu(self.vx(x))]
        if self.kind in ("ltn", "ltwin"):
            parts.append(self.vz(z))
        if self.kind == "ltwin":
            parts += [torch.relu(self.ux(tx)), self.uz(tz)]
        return self.out(self.drop(torch.cat(parts, 1)))


def sample_neighbourhoods(neighbours: np.ndarray, m: int, big_m: int, rng: np.random.Generator) -> np.ndarray:
    """For each row, ``m`` of its first ``big_m`` neighbours, drawn without replacement, in distance order."""
    n, available = neighbours.shape
    big_m = min(big_m, available)
    m = min(m, big_m)
    keys = rng.random((n, big_m))
    pick = np.sort(np.argsort(keys, axis=1)[:, :m], axis=1)
    return np.take_along_axis(neighbours[:, :big_m], pick, axis=1)


class TagModel:
    """A trained neighbourhood model."""

    def __init__(self, net: TagNet, config: TagModelConfig, multilabel: bool, dims: tuple[int, int, int]) -> None:
        self.net = net.eval()
        self.config = config
        self.multilabel = multilabel
        self.dims = dims

    @classmethod
    def fit(
        cls,
        visual: np.ndarray,
        tags: np.ndarray,
        neighbours: np.ndarray,
        rows: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        multilabel: bool,
        config: TagModelConfig,
        *,
        progress: ProgressFn = silent,
    ) -> TagModel:
        """Train on ``rows`` (targets ``y[rows]``: class indices, or a 0/1 matrix if multi-label).

        Args:
            visual: (N, d) image features of every image neighbours may come from.
            tags: (N, t) tag vectors of every image.
            neighbours: (N, >= big_m) nearest images of each row, nearest first.
        """
        cfg = config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        net = TagNet(visual.shape[1], tags.shape[1], n_classes, cfg)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        xv, xt = torch.from_numpy(visual), torch.from_numpy(tags)
        target = torch.from_numpy(y[rows].astype(np.float32 if multilabel else np.int64))
        loss_fn = torch.nn.BCEWithLogitsLoss() if multilabel else torch.nn.CrossEntropyLoss()
        for epoch in range(cfg.epochs):
            progress(f"{cfg.kind} (m={cfg.m}, M={cfg.big_m})", epoch, cfg.epochs)
            net.train()
            hood = torch.from_numpy(sample_neighbourhoods(neighbours[rows], cfg.m, cfg.big_m, rng))
            order = torch.from_numpy(rng.permutation(len(rows)))
            for b in range(0, len(rows), cfg.batch_size):
                idx = order[b : b + cfg.batch_size]
                r = torch.from_numpy(rows)[idx]
                z = hood[idx]
                loss = loss_fn(net(xv[r], xv[z], xt[r], xt[z]), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        progress(f"{cfg.kind} (m={cfg.m}, M={cfg.big_m})", cfg.epochs, cfg.epochs)
        return cls(net, cfg, multilabel, (visual.shape[1], tags.shape[1], n_classes))

    @torch.inference_mode()
    def predict_proba(self, visual: np.ndarray, tags: np.ndarray, neighbours: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Probabilities of ``rows`` averaged over ``samples`` sampled neighbourhoods (Eq. 2)."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed + 1)
        with warnings.catch_warnings():  # memory-mapped, read-only arrays: viewed without a copy, never written
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            xv, xt = torch.from_numpy(visual), torch.from_numpy(tags)
        r = torch.from_numpy(rows)
        total = np.zeros((len(rows), self.dims[2]), dtype=np.float32)
        samples = 1 if cfg.kind == "visual_only" else cfg.samples
        for _ in range(samples):
            z = torch.from_numpy(sample_neighbourhoods(neighbours[rows], cfg.m, cfg.big_m, rng))
            logits = self.net(xv[r], xv[z], xt[r], xt[z])
            total += (torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, 1)).numpy()
        return total / samples

    def save(self, folder: str | Path, name: str) -> None:
        meta = {"config": asdict(self.config), "multilabel": self.multilabel, "dims": list(self.dims)}
        save_checkpoint(folder, name, module_tensors(self.net), meta)

    @classmethod
    def load(cls, folder: str | Path, name: str) -> TagModel:
        tensors, meta = load_checkpoint(folder, name)
        cfg = TagModelConfig(**meta["config"])
        dims = tuple(meta["dims"])
        net = TagNet(dims[0], dims[1], dims[2], cfg)
        load_module_tensors(net, tensors)
        return cls(net, cfg, meta["multilabel"], dims)  # type: ignore[arg-type]
