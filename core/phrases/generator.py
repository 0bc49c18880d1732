"""The phrase generator: a bottleneck head trained with a cosine-distance softmax over phrases.

Paper §3.2. Backbone features go through a small MLP to a ``bottleneck_dim`` (64) embedding
``x``; phrase ``c`` has a weight vector ``w_c``; ``p(c | x) ∝ exp(s · cos(x, w_c))`` (Eq. 1,
cosine distance with a scale ``s``). An image with several phrases has the uniform
distribution over them as its target. Above ``sampled_threshold`` softmax classes the loss is
computed on the batch's positives plus ``n_negatives`` uniformly drawn classes (a sampled
softmax). After training, the prototype of every phrase (softmax class or not) is the mean
bottleneck embedding of its images (Eq. 2): the "large output space". ``output_space="small"``
keeps only the softmax classes' weights, for the ablation.

A generator is a model of its own: it can be fitted on any corpus of (image, text) pairs,
saved (safetensors + JSON) and applied to any dataset with the same backbone. Its prototype index
is built in memory when first searched; above ``config.on_disk_above`` prototypes (an IVF index)
``save`` also writes it with its inverted lists on disk, which ``load`` maps instead of building
it (:mod:`core.phrases.index`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from scipy import sparse

from core.config import GeneratorConfig
from core.phrases.index import INDEX_FILE, LISTS_FILE, PhraseIndex, on_disk, read_on_disk, write_on_disk
from core.phrases.vocab import PhraseVocabulary
from core.progress import ProgressFn, silent
from core.safetensors_mmap import load_mmap
from core.vectors import l2n


class _Encoder(torch.nn.Module):
    def __init__(self, in_dim: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(in_dim, cfg.hidden_dim),
            torch.nn.GELU(),
            torch.nn.Dropout(cfg.dropout),
            torch.nn.Linear(cfg.hidden_dim, cfg.bottleneck_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.net(x), dim=-1)


class PhraseGenerator:
    """A fitted phrase generator: ``encode`` features to the co-embedding, ``top_phrases``."""

    def __init__(
        self,
        config: GeneratorConfig,
        vocab: PhraseVocabulary,
        encoder: _Encoder,
        feature_mean: np.ndarray,
        class_ids: np.ndarray,
        class_weights: np.ndarray,
        prototypes: np.ndarray,
        backbone: str = "",
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.encoder = encoder.eval()
        self.feature_mean = feature_mean.astype(np.float32)
        self.class_ids = class_ids
        self.class_weights = class_weights
        self.prototypes = prototypes
        self.backbone = backbone
        self._index: PhraseIndex | None = None
        self._index_folder: Path | None = None  # where its index's lists are on disk, if they are
        self._distinct: np.ndarray | None = None

    # --- inference -------------------------------------------------------------------
    def _prep(self, features: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(l2n(l2n(features) - self.feature_mean))

    @torch.inference_mode()
    def encode(self, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Bottleneck embeddings (N, bottleneck_dim), L2-normalised."""
        out = [self.encoder(self._prep(features[i : i + batch_size])).numpy() for i in range(0, len(features), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.config.bottleneck_dim), np.float32)

    @property
    def output_ids(self) -> np.ndarray:
        """Vocabulary ids of the index rows: softmax classes ("small"), or one phrase per distinct
        prototype ("large"; phrases carried by exactly the same images share one prototype, and only
        the most frequent of them is searched, so the top-k are k different things)."""
        if self.config.output_space == "small":
            return self.class_ids
        if self._distinct is None:
            self._distinct = distinct_prototype_ids(self.prototypes)
        return self._distinct

    @property
    def index(self) -> PhraseIndex:
        """The index over the output space's vectors (built in memory on first use, unless loaded from disk)."""
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def _build_index(self) -> PhraseIndex:
        vecs = self.class_weights if self.config.output_space == "small" else self.prototypes[self.output_ids]
        return PhraseIndex.build(vecs, self.config.index_factory, seed=self.config.seed)

    @property
    def index_on_disk(self) -> bool:
        """Whether ``save`` writes the index with its lists on disk (see ``GeneratorConfig.on_disk_above``)."""
        return on_disk(len(self.output_ids), self.config.index_factory, self.config.on_disk_above)

    def search(self, embeddings: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, vocab_ids)`` of the top-k phrases for bottleneck embeddings."""
        scores, rows = self.index.search(embeddings, k)
        ids = np.where(rows >= 0, self.output_ids[np.maximum(rows, 0)], -1)
        return scores, ids

    def top_phrases(self, features: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        """Top-k ``(phrase, cosine score)`` per image, best first."""
        scores, ids = self.search(self.encode(features), k)
        return [[(self.vocab.phrases[j], float(s)) for s, j in zip(srow, irow) if j >= 0] for srow, irow in zip(scores, ids)]

    # --- persistence -----------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write ``generator.json``, ``vocab.json``, ``generator.safetensors``, and the index with its
        lists on disk when :attr:`index_on_disk`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"encoder.{k}": v.detach().cpu().numpy() for k, v in self.encoder.state_dict().items()}
        tensors.update(
            feature_mean=self.feature_mean,
            class_ids=self.class_ids.astype(np.int64),
            class_weights=self.class_weights,
            prototypes=self.prototypes,
        )
        if self.config.output_space == "large":  # the index rows' phrases: not recomputed over every prototype at load
            tensors["output_ids"] = self.output_ids.astype(np.int64)
        staged = folder / "generator.safetensors.partial"  # then renamed: a loaded generator maps the file it replaces
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(staged))
        staged.replace(folder / "generator.safetensors")
        self.vocab.save(folder / "vocab.json")
        meta = {"config": asdict(self.config), "in_dim": int(self.feature_mean.shape[0]), "backbone": self.backbone}
        if self.index_on_disk:
            meta["index"] = {"factory": self._save_index(folder), "files": [INDEX_FILE, LISTS_FILE]}
        (folder / "generator.json").write_text(json.dumps(meta, indent=2))

    def _save_index(self, folder: Path) -> str:
        """Write the index with its lists on disk into ``folder`` (copied if it was read from such
        files, else written from the index in memory); returns its factory string."""
        source = self._index_folder
        if source is not None and all((source / f).is_file() for f in (INDEX_FILE, LISTS_FILE)):
            if source.resolve() != folder.resolve():
                for name in (INDEX_FILE, LISTS_FILE):
                    shutil.copyfile(source / name, folder / name)
            return self.index.factory
        index = self.index if source is None else self._build_index()  # lists in memory
        write_on_disk(index, folder)
        return index.factory

    @classmethod
    def load(cls, folder: str | Path) -> PhraseGenerator:
        folder = Path(folder)
        meta = json.loads((folder / "generator.json").read_text())
        cfg = GeneratorConfig(**meta["config"])
        t = load_mmap(folder / "generator.safetensors")  # read-only views: the prototypes stay on disk until read
        enc = _Encoder(meta["in_dim"], cfg)
        enc.load_state_dict({k[8:]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("encoder.")})
        vocab = PhraseVocabulary.load(folder / "vocab.json")
        gen = cls(cfg, vocab, enc, t["feature_mean"], t["class_ids"], t["class_weights"], t["prototypes"], meta["backbone"])
        gen._distinct = t.get("output_ids")  # absent in generators saved before it was stored: computed when needed
        if "index" in meta:  # saved with its lists on disk: mapped, not built
            gen._index, gen._index_folder = read_on_disk(folder, meta["index"]["factory"]), folder
        return gen


def distinct_prototype_ids(prototypes: np.ndarray) -> np.ndarray:
    """Ids of the first (most frequent) phrase of every distinct non-zero prototype, in vocabulary order."""
    nonzero = np.flatnonzero(np.abs(prototypes).sum(1) > 0)
    _, first = np.unique(np.round(prototypes[nonzero], 5), axis=0, return_index=True)
    return nonzero[np.sort(first)]


def compute_prototypes(embeddings: np.ndarray, incidence: sparse.csr_matrix) -> np.ndarray:
    """Eq. 2: mean embedding of each phrase's images, L2-normalised; phrases without images are zero."""
    sums = incidence.T.tocsr() @ embeddings
    return l2n(np.asarray(sums, dtype=np.float32))


def fit_phrase_generator(
    features: np.ndarray,
    phrase_lists: list[list[str]],
    config: GeneratorConfig | None = None,
    *,
    vocab: PhraseVocabulary | None = None,
    backbone: str = "",
    progress: ProgressFn = silent,
    stage: str = "phrase generator",
) -> PhraseGenerator:
    """Train a phrase generator on (image features, phrases of the image's text).

    Args:
        features: (N, D) backbone features of the corpus images.
        phrase_lists: the phrases of each image (see :func:`core.phrases.extract_phrases`).
        config: hyper-parameters.
        vocab: a fixed vocabulary to use (phrase ids stay comparable across generators, as in
            cross-fitting); by default it is built from ``phrase_lists``.
        backbone: name of the backbone that produced ``features`` (checked when applied).
        progress: progress callback, one step per epoch.
        stage: the progress stage name.
    """
    cfg = config or GeneratorConfig()
    if vocab is None:
        vocab = PhraseVocabulary.build(phrase_lists, min_images_softmax=cfg.min_images_softmax, max_df=cfg.max_df)
    inc = vocab.incidence(phrase_lists)
    counts = np.asarray(inc.sum(0)).ravel()
    class_ids = np.flatnonzero(counts >= cfg.min_images_softmax)
    if len(class_ids) < 2:
        raise ValueError(
            f"only {len(class_ids)} phrases occur on {cfg.min_images_softmax}+ images: "
            "the phrase generator needs more text (captions, titles or tags)"
        )
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    feature_mean = l2n(features).mean(0)
    x_all = torch.from_numpy(l2n(l2n(features) - feature_mean))
    targets = inc[:, class_ids].tocsr()
    has_pos = np.flatnonzero(np.asarray(targets.sum(1)).ravel() > 0)
    encoder = _Encoder(features.shape[1], cfg)
    weights = torch.nn.Parameter(torch.randn(len(class_ids), cfg.bottleneck_dim) * 0.1)
    opt = torch.optim.AdamW([*encoder.parameters(), weights], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(has_pos) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    sampled = len(class_ids) > cfg.sampled_threshold
    encoder.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(has_pos)
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) == 0:
                continue
            t = targets[idx]
            if sampled:
                pos = np.unique(t.indices)
                neg = rng.choice(len(class_ids), size=min(cfg.n_negatives, len(class_ids)), replace=False)
                cand = np.union1d(pos, neg)
                t = t[:, cand]
                w = weights[torch.from_numpy(cand)]
            else:
                w = weights
            dense = torch.from_numpy(np.asarray(t.todense(), dtype=np.float32))
            dense = dense / dense.sum(1, keepdim=True)
            z = encoder(x_all[idx])
            logits = cfg.scale * z @ torch.nn.functional.normalize(w, dim=-1).T
            loss = -(dense * torch.log_softmax(logits, dim=-1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        progress(stage, epoch + 1, cfg.epochs)
    encoder.eval()
    with torch.inference_mode():
        emb = encoder(x_all).numpy()
        class_weights = torch.nn.functional.normalize(weights.detach(), dim=-1).numpy()
    prototypes = compute_prototypes(emb, inc)
    return PhraseGenerator(cfg, vocab, encoder, feature_mean, class_ids, class_weights, prototypes, backbone)
