"""Caption labels cached by content: a refit whose teacher inputs have not changed reuses them.

The caption-label teacher (:func:`core.captions.caption_labels`: logistic regressions with
cross-validated features and threshold) is a large part of a refit when the features are already
cached. Its result depends only on its inputs, so it is stored under a SHA-256 digest of all of
them (captions, caption embeddings, visual features, human targets, the labelled and training
rows, label names, settings, seed) and of the teacher's own source code: a label edit, another
seed or a change to the teacher makes a new entry; nothing stale is ever read.

Entries are ``<cache>/caption_labels/<digest>.safetensors`` (arrays; the scalars in its metadata),
written atomically. A damaged entry is recomputed. Only the ``KEEP`` most recently used entries
stay (every retrain after a label edit writes one, and an entry holds an (N, labels) array).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

from core import captions as _captions
from core.captions import CaptionLabelConfig, CaptionLabels, caption_labels

_ARRAYS = ("targets", "caption", "confidence", "predicted")
KEEP = 8  # entries kept per cache folder, most recently used first


def teacher_digest(
    texts: list[str],
    emb: np.ndarray,
    y_all: np.ndarray,
    labelled: np.ndarray,
    train: np.ndarray,
    multilabel: bool,
    config: CaptionLabelConfig,
    seed: int,
    visual: np.ndarray | None,
    label_names: tuple[list[str], np.ndarray] | None,
) -> str:
    """Hex SHA-256 of everything :func:`core.captions.caption_labels` reads, and of its module's source."""
    h = hashlib.sha256(inspect.getsource(_captions).encode())
    h.update(json.dumps([asdict(config), int(seed), bool(multilabel), texts, label_names and label_names[0]]).encode())
    for a in (emb, y_all, labelled, train, visual, None if label_names is None else label_names[1]):
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _load(path: Path) -> CaptionLabels | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in _ARRAYS}
        return CaptionLabels(
            arrays["targets"],
            arrays["caption"].astype(bool),
            arrays["confidence"],
            arrays["predicted"],
            float(meta["threshold"]),
            meta["features"],
            float(meta["cv_accuracy"]),
        )
    except Exception:  # missing, damaged or from an older layout: recompute
        return None


def _save(path: Path, labels: CaptionLabels) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(getattr(labels, k)) for k in _ARRAYS}
    arrays["caption"] = arrays["caption"].astype(np.uint8)
    meta = {
        "threshold": repr(float(labels.threshold)),
        "features": labels.features,
        "cv_accuracy": repr(float(labels.cv_accuracy)),
    }
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    save_file(arrays, str(tmp), metadata=meta)
    os.replace(tmp, path)
    entries = sorted(path.parent.glob("*.safetensors"), key=_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)


def _mtime(entry: Path) -> float:
    """When an entry was last used; 0 for one that is gone (another fit sharing the cache pruned it
    between the listing and this look: the fit must not die for it after all its work)."""
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def cached_caption_labels(
    cache_root: str | Path | None,
    texts: list[str],
    emb: np.ndarray,
    y_all: np.ndarray,
    labelled: np.ndarray,
    train: np.ndarray,
    multilabel: bool,
    config: CaptionLabelConfig | None = None,
    seed: int = 0,
    *,
    visual: np.ndarray | None = None,
    label_names: tuple[list[str], np.ndarray] | None = None,
) -> CaptionLabels:
    """:func:`core.captions.caption_labels`, read from ``cache_root`` when the same inputs were labelled before.

    Args:
        cache_root: the fit's cache folder (:meth:`core.config.FitConfig.cache_root`); ``None``: no cache.
        texts, emb, y_all, labelled, train, multilabel, config, seed, visual, label_names: as
            :func:`core.captions.caption_labels`.
    """
    cfg = config or CaptionLabelConfig()
    args = (texts, emb, y_all, labelled, train, multilabel, cfg, seed)
    if cache_root is None:
        return caption_labels(*args, visual=visual, label_names=label_names)
    path = Path(cache_root) / "caption_labels" / f"{teacher_digest(*args, visual, label_names)}.safetensors"
    found = _load(path)
    if found is not None:
        path.touch()  # recently used: kept
        return found
    labels = caption_labels(*args, visual=visual, label_names=label_names)
    _save(path, labels)
    return labels
