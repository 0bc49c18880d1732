"""Predictions for a whole collection, written to parquet shards.

``python -m core predict-batch --workspace WS DATA --out OUT [--engine local|ray]``

DATA is a dataset (manifest or folder, as for ``fit``; labels and text are not needed) and OUT a new
folder. Every image gets one row: ``image``, ``error`` (empty when it was predicted), its top phrases
and their scores, and the top label and probability of every model. The local engine runs in this
process, one shard per ``shard_size`` images; the Ray engine (:mod:`core.engines`) decodes in parallel
tasks, runs the backbone in an actor pool and phrase search, text vectors and classifiers as a batch
map, and Ray writes the shards. Both compute the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.backbones import resolve_device
from core.data.manifest import MANIFEST_NAMES, _folder_rows, _read_rows
from core.features import embed_images
from core.forward import ImageArrays, generator_input
from core.progress import ProgressFn, silent
from core.workspace import Workspace, open_workspace

MODELS = ("baseline", "multimodal", "text_only", "zeroshot")
TOP_PHRASES = 5


def collection_paths(data: str | Path) -> list[str]:
    """Image files of a dataset (manifest rows or an image folder), labelled or not, in order."""
    src = Path(data).expanduser().resolve()
    if not src.exists():
        raise FileNotFoundError(f"dataset not found: {data}")
    manifest = src if src.is_file() else next((src / n for n in MANIFEST_NAMES if (src / n).is_file()), None)
    root = manifest.parent if manifest is not None else src
    rows = (_read_rows(manifest) if manifest is not None else _folder_rows(src))[0]
    # a row is a dict, or the reason it could not be read (a string): those are skipped
    paths = [str(root / str(r["image"])) for r in rows if isinstance(r, dict) and r.get("image")]
    if not paths:
        raise ValueError(f"no image in {data}")
    return paths


def prediction_table(
    ws: Workspace, images: list[str], feats: np.ndarray, gen_in: np.ndarray, errors: dict[int, str]
) -> pd.DataFrame:
    """One row per image: phrases, and every model's top label and probability (``error`` rows empty)."""
    ok = np.array([i not in errors for i in range(len(images))])
    table = pd.DataFrame({"image": images, "error": [errors.get(i, "") for i in range(len(images))]})
    phrases: list[list[str]] = [[] for _ in images]
    phrase_scores: list[list[float]] = [[] for _ in images]
    labels = {m: [None] * len(images) for m in MODELS}
    top_p = {m: np.full(len(images), np.nan, dtype=np.float32) for m in MODELS}
    if ok.any():
        emb, ids, scores = ws.phrase_outputs(feats[ok], gen_in[ok])
        probs = ws.model_probabilities(ImageArrays(feats[ok], ws.text_vectors_of(ids, scores)), emb)
        rows = np.flatnonzero(ok)
        for r, row_ids, row_scores in zip(rows, ids, scores):
            keep = row_ids[:TOP_PHRASES] >= 0
            phrases[r] = [ws.phrases[j] for j in row_ids[:TOP_PHRASES][keep]]
            phrase_scores[r] = [float(s) for s in row_scores[:TOP_PHRASES][keep]]
        for m in MODELS:
            best = probs[m].argmax(1)
            top_p[m][rows] = probs[m][np.arange(len(rows)), best]
            for r, j in zip(rows, best):
                labels[m][r] = ws.labels[j]
    table["phrases"] = phrases
    table["phrase_scores"] = phrase_scores
    for m in MODELS:
        table[f"{m}_label"] = labels[m]
        table[f"{m}_prob"] = top_p[m]
    return table


class _Downstream:
    """Ray actor: phrase search, text vectors and classifiers of one workspace, loaded once."""

    def __init__(self, workspace: str, runtime: str | None):
        self.ws = open_workspace(workspace, runtime=runtime)

    def __call__(self, batch: dict[str, np.ndarray]) -> pd.DataFrame:
        feats = batch["features0"]
        gen_in = generator_input(feats, batch.get("features1"))
        errors = {i: str(e) for i, e in enumerate(batch["error"]) if e}
        table = prediction_table(self.ws, [str(p) for p in batch["path"]], feats, gen_in, errors)
        return table.assign(position=batch["pos"].astype(np.int64))


def _backbone_specs(ws: Workspace) -> list[tuple[str, str | None]]:
    cfg = ws.config
    return [(cfg.backbone, cfg.backbone_weights)] + ([(cfg.generator_backbone, None)] if cfg.generator_backbone else [])


def predict_batch(
    workspace: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    runtime: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    shard_size: int = 4096,
    progress: ProgressFn = silent,
) -> int:
    """Predict every image of ``data`` with a fitted workspace and write parquet shards to ``out``.

    Args:
        workspace: the fitted workspace.
        data: a dataset or image folder (see :func:`collection_paths`).
        out: a new (or empty) folder for the shards.
        engine: ``local`` or ``ray``.
        ray_address: the Ray cluster (``None``: a local Ray).
        runtime: backbone runtime (``None``: the fit's).
        device: ``auto``, ``cpu`` or ``cuda`` (with Ray: GPU actors where the cluster has GPUs).
        batch_size: backbone batch size.
        shard_size: images per shard (local engine).
        progress: ``progress("predict", done, total)``.

    Returns:
        The number of images predicted (not counting those that could not be decoded).
    """
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output folder {out} exists and is not empty; give a new folder")
    paths = collection_paths(data)
    ws = open_workspace(workspace, device=resolve_device(device) if engine == "local" else "cpu", runtime=runtime)
    out.mkdir(parents=True, exist_ok=True)
    if engine == "ray":
        return _predict_ray(ws, paths, out, ray_address, runtime, device, batch_size)
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose local or ray")
    n_ok = 0
    for k, start in enumerate(range(0, len(paths), shard_size)):
        chunk = paths[start : start + shard_size]
        feats, errors, _ = embed_images(chunk, ws.backbone, batch_size=batch_size)
        second = ws.generator_backbone
        extra = embed_images(chunk, second, batch_size=batch_size)[0] if second is not None else None
        table = prediction_table(ws, chunk, feats, generator_input(feats, extra), errors)
        table.assign(position=np.arange(start, start + len(chunk))).to_parquet(out / f"part-{k:05d}.parquet", index=False)
        n_ok += len(chunk) - len(errors)
        progress("predict", start + len(chunk), len(paths))
    return n_ok


def _predict_ray(
    ws: Workspace, paths: list[str], out: Path, address: str | None, runtime: str | None, device: str, batch_size: int
) -> int:
    from core.engines import RayEngine, import_ray

    cfg = ws.config
    engine = RayEngine(address, runtime=runtime or cfg.runtime, device=device, batch_size=batch_size, cache_dir=cfg.cache_dir)
    ds = engine.dataset(paths, _backbone_specs(ws), ws.backbone.info)
    ds = ds.map_batches(
        _Downstream,
        fn_constructor_kwargs={"workspace": str(ws.path), "runtime": runtime},
        compute=import_ray().data.ActorPoolStrategy(size=1),
        batch_size=1024,
        # reserves no CPU: the backbone actors and the decoding tasks already share every core (engines.plan_actors),
        # and a reservation here left the decoding tasks unschedulable on a 2-CPU local Ray
        num_cpus=0,
    )
    ds.write_parquet(str(out))
    return int(sum((pd.read_parquet(f, columns=["error"])["error"] == "").sum() for f in out.glob("*.parquet")))
