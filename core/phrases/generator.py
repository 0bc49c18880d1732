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
saved (safetensors, an Arrow vocabulary and JSON) and applied to any dataset with the same
backbone. Below ``config.on_disk_above`` phrases everything is in memory: the prototype index is
built when first searched. Above, the output space is handled as past memory (the paper searches
more than 40M phrases): the fit computes the prototypes shard by shard into a file it maps
(:func:`compute_prototypes`), the distinct prototypes are found by hashing rows shard by shard
(:func:`distinct_prototype_ids`), and an IVF index is built shard by shard with its inverted lists
on disk (:func:`core.phrases.index.build_on_disk`), all in a scratch folder under the system's
temporary directory (``TMPDIR``) that is removed with the generator; ``save`` streams the prototypes
and copies the index files, and ``load`` maps the prototypes, the vocabulary
(:mod:`core.phrases.vocab_file`) and the index.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from scipy import sparse

from core.config import GeneratorConfig
from core.phrases.index import INDEX_FILE, LISTS_FILE, SHARD, PhraseIndex, build_on_disk, on_disk, read_on_disk
from core.phrases.occurrences import PhraseOccurrences, fit_input
from core.phrases.vocab import PhraseVocabulary
from core.progress import ProgressFn, silent
from core.safetensors_mmap import Streamed, load_mmap, save_streamed
from core.vectors import l2n

#: The vocabulary's file in a generator folder; generators saved before it have ``vocab.json``.
VOCAB_FILE, LEGACY_VOCAB_FILE = "vocab.arrow", "vocab.json"


def past_memory(n: int, config: GeneratorConfig) -> bool:
    """Whether ``n`` phrases are handled as past memory (above ``config.on_disk_above``)."""
    return config.on_disk_above is not None and n > config.on_disk_above


def _scratch() -> tempfile.TemporaryDirectory:
    """A folder for a fitted generator's files past memory, removed when the generator is collected."""
    return tempfile.TemporaryDirectory(prefix="pixctx-generator-")


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
        self._scratch: tempfile.TemporaryDirectory | None = None  # files of a fit past memory (removed with it)

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
        cfg = self.config
        if self.index_on_disk:  # shard by shard into the scratch folder: never every prototype's codes at once
            self._scratch = self._scratch or _scratch()
            folder = Path(self._scratch.name) / "index"
            small, ids = cfg.output_space == "small", self.output_ids

            def take(rows: np.ndarray) -> np.ndarray:
                return self.class_weights[rows] if small else self.prototypes[ids[rows]]

            index = build_on_disk(take, len(ids), cfg.index_factory, folder, seed=cfg.seed)
            self._index_folder = folder
            return index
        vecs = self.class_weights if cfg.output_space == "small" else self.prototypes[self.output_ids]
        return PhraseIndex.build(vecs, cfg.index_factory, seed=cfg.seed)

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
        """Write ``generator.json``, ``vocab.arrow``, ``generator.safetensors`` (streamed: mapped
        prototypes are never read whole), and the index with its lists on disk when :attr:`index_on_disk`."""
        folder = Path(folder)
        ours = (folder / "generator.json").is_file()  # a generator this product saved before: its old files may go
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
        save_streamed(staged, tensors)
        staged.replace(folder / "generator.safetensors")
        self.vocab.save(folder / VOCAB_FILE)
        if ours:
            (folder / LEGACY_VOCAB_FILE).unlink(missing_ok=True)  # an earlier save's copy of the vocabulary
        meta = {"config": asdict(self.config), "in_dim": int(self.feature_mean.shape[0]), "backbone": self.backbone}
        if self.index_on_disk:
            meta["index"] = {"factory": self._save_index(folder), "files": [INDEX_FILE, LISTS_FILE]}
        (folder / "generator.json").write_text(json.dumps(meta, indent=2))

    def _save_index(self, folder: Path) -> str:
        """Copy the index's files into ``folder`` (built shard by shard first if it was not, or if
        the folder it was read from lost them); returns its factory string."""
        source = self._index_folder
        if source is None or not all((source / f).is_file() for f in (INDEX_FILE, LISTS_FILE)):
            self._index = None  # not built yet (or built in memory before its config changed), or its files gone
            self._index = self._build_index()
            source = self._index_folder
        if source.resolve() != folder.resolve():
            for name in (INDEX_FILE, LISTS_FILE):
                shutil.copyfile(source / name, folder / name)
        return self.index.factory

    @classmethod
    def load(cls, folder: str | Path) -> PhraseGenerator:
        folder = Path(folder)
        meta = json.loads((folder / "generator.json").read_text())
        cfg = GeneratorConfig(**meta["config"])
        t = load_mmap(folder / "generator.safetensors")  # read-only views: the prototypes stay on disk until read
        enc = _Encoder(meta["in_dim"], cfg)
        enc.load_state_dict({k[8:]: torch.from_numpy(np.array(v)) for k, v in t.items() if k.startswith("encoder.")})
        vocab_file = folder / VOCAB_FILE
        vocab = PhraseVocabulary.load(vocab_file if vocab_file.is_file() else folder / LEGACY_VOCAB_FILE)
        gen = cls(cfg, vocab, enc, t["feature_mean"], t["class_ids"], t["class_weights"], t["prototypes"], meta["backbone"])
        gen._distinct = t.get("output_ids")  # absent in generators saved before it was stored: computed when needed
        if "index" in meta:  # saved with its lists on disk: mapped, not built
            gen._index, gen._index_folder = read_on_disk(folder, meta["index"]["factory"]), folder
        return gen


def _rounded(rows: np.ndarray) -> np.ndarray:
    """Rows rounded to 5 decimals (what counts as the same prototype), ``-0.0`` made ``0.0``."""
    return np.round(np.asarray(rows, dtype=np.float32), 5) + np.float32(0.0)


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each rounded row (equal rows, equal hashes): its float32 bits times fixed
    odd 64-bit weights, summed modulo 2**64 (a column at a time: one uint64 per row held)."""
    weights = np.random.default_rng(0).integers(0, 2**64 - 1, size=rows.shape[1], dtype=np.uint64, endpoint=True) | np.uint64(1)
    bits = rows.view(np.uint32)
    out = np.zeros(len(rows), dtype=np.uint64)
    for j, w in enumerate(weights):
        out += bits[:, j].astype(np.uint64) * w
    return out


def distinct_prototype_ids(prototypes: np.ndarray, shard: int = SHARD) -> np.ndarray:
    """Ids of the first (most frequent) phrase of every distinct non-zero prototype, in vocabulary order.

    Rows count as the same prototype when they are equal rounded to 5 decimals. Each rounded row
    is hashed, ``shard`` rows at a time (``prototypes`` may be memory-mapped); the first row of
    each hash is kept, and a later row with the same hash is checked against it: one that differs
    (a hash collision) is grouped with the others that differ by comparing rows.
    """
    ids, hashes = [], []
    for s in range(0, len(prototypes), shard):
        block = _rounded(prototypes[s : s + shard])
        nonzero = np.flatnonzero(np.abs(block).sum(1) > 0)
        ids.append(nonzero + s)
        hashes.append(_row_hashes(block[nonzero]))
    ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    kept = ids[first]
    later = np.flatnonzero(kept[inverse] != ids)  # rows whose hash an earlier row has: the same row, unless a collision
    collided = []
    for s in range(0, len(later), shard):
        rows, reps = ids[later[s : s + shard]], kept[inverse[later[s : s + shard]]]
        collided.append(rows[(_rounded(prototypes[rows]) != _rounded(prototypes[reps])).any(1)])
    collided = np.concatenate(collided) if collided else np.zeros(0, dtype=np.int64)
    if len(collided):
        _, firsts = np.unique(_rounded(prototypes[collided]), axis=0, return_index=True)
        kept = np.union1d(kept, collided[firsts])
    return np.sort(kept)


def compute_prototypes(
    embeddings: np.ndarray, incidence: sparse.csr_matrix, path: Path | None = None, shard: int = SHARD
) -> np.ndarray:
    """Eq. 2: mean embedding of each phrase's images, L2-normalised; phrases without images are zero.

    Args:
        embeddings: (N, d) bottleneck embeddings of the images.
        incidence: (N, V) images x phrases.
        path: where to write them, ``shard`` phrases at a time (a safetensors file of one tensor
            ``prototypes``): they are then returned memory-mapped and never all in memory.
            ``None``: computed in memory.
        shard: phrases computed at a time with ``path``.
    """
    by_phrase = incidence.T.tocsr()
    if path is None:
        return l2n(np.asarray(by_phrase @ embeddings, dtype=np.float32))
    n, d = by_phrase.shape[0], embeddings.shape[1]
    blocks = (l2n(np.asarray(by_phrase[s : s + shard] @ embeddings, dtype=np.float32)) for s in range(0, n, shard))
    save_streamed(path, {"prototypes": Streamed(np.dtype(np.float32), (n, d), blocks)})
    return load_mmap(path)["prototypes"]


def fit_phrase_generator(
    features: np.ndarray,
    phrase_lists: list[list[str]] | PhraseOccurrences,
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
        phrase_lists: the phrases of each image (see :func:`core.phrases.extract_phrases`), or
            :class:`~core.phrases.occurrences.PhraseOccurrences`; lists of more than
            ``config.on_disk_above`` phrases are converted to it (:func:`~core.phrases.occurrences.fit_input`).
        config: hyper-parameters.
        vocab: a fixed vocabulary to use (phrase ids stay comparable across generators, as in
            cross-fitting); by default it is built from ``phrase_lists``.
        backbone: name of the backbone that produced ``features`` (checked when applied).
        progress: progress callback, one step per epoch.
        stage: the progress stage name.
    """
    cfg = config or GeneratorConfig()
    phrase_lists = fit_input(phrase_lists, cfg.on_disk_above)
    if vocab is None:
        vocab = PhraseVocabulary.build(phrase_lists, min_images_softmax=cfg.min_images_softmax, max_df=cfg.max_df)
    inc = vocab.incidence(phrase_lists)
    counts = np.asarray(inc.sum(0)).ravel()
    class_ids = np.flatnonzero(counts >= cfg.min_images_softmax)
    if len(class_ids) < 2:
        raise ValueError(
            f"only {len(class_ids)} phrases occur on {cfg.min_images_softmax}+ images (a phrase on more than "
            f"{cfg.max_df:.0%} of them says nothing about any one and is left out): the phrase generator needs more, "
            "and more varied, text (captions, titles or tags); or fit with --phrase-source imagenet, which needs none"
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
    scratch = _scratch() if past_memory(len(vocab), cfg) else None  # prototypes written shard by shard, mapped
    prototypes = compute_prototypes(emb, inc, Path(scratch.name) / "prototypes.safetensors" if scratch else None)
    gen = PhraseGenerator(cfg, vocab, encoder, feature_mean, class_ids, class_weights, prototypes, backbone)
    gen._scratch = scratch
    return gen
