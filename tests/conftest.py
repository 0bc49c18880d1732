"""Shared fixtures: a small real subset of the embedded demo dataset and one fitted workspace."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "demo"
# Six well-separated demo labels, 14 images each: small enough to fit in seconds.
SMALL_LABELS = ["animals/birds", "food/fruit", "recreation/music", "transportation/vehicles", "plants/flowers", "tools/weapons"]
PER_LABEL = 14

os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))


def demo_rows() -> list[dict[str, str]]:
    with (DEMO / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_subset(dest: Path, labels: list[str] = SMALL_LABELS, per_label: int = PER_LABEL) -> Path:
    """Copy ``per_label`` demo images of each label (their own train/test split kept) to ``dest``."""
    rows = []
    for label in labels:
        own = [r for r in demo_rows() if r["label"] == label]
        test = [r for r in own if r["split"] == "test"][: max(3, per_label // 4)]
        train = [r for r in own if r["split"] == "train"][: per_label - len(test)]
        rows += train + test
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(DEMO / r["image"], dest / r["image"])
    write_manifest(dest, rows)
    return dest


def write_manifest(dest: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as ``dest/manifest.csv``."""
    with (dest / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def edit_manifest(data: Path, **columns: str) -> Path:
    """Set ``columns`` (e.g. ``text=""``) on every row of ``data/manifest.csv``."""
    with (data / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = [{**r, **columns} for r in csv.DictReader(fh)]
    write_manifest(data, rows)
    return data


def copy_with_labels_aside(workspace: Path, dest: Path, n: int):
    """Copy a fitted workspace to ``dest`` as a fit with a share of the labels would leave it (the
    10% demo): its first ``n`` labelled rows keep their dataset labels but no model trained on
    them. Returns those rows."""
    import numpy as np
    import pandas as pd

    shutil.copytree(workspace, dest)
    items = pd.read_parquet(dest / "items.parquet")
    aside = np.flatnonzero(items["labelled"].to_numpy())[:n]
    items.loc[aside, "labelled"] = False
    items.to_parquet(dest / "items.parquet")
    return aside


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["PIXCTX_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_subset(tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def fitted_workspace(small_dataset: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.classifiers import ClassifierConfig
    from core.phrases.generator import GeneratorConfig
    from core.pipeline import FitConfig, fit
    from core.progress import silent

    cfg = FitConfig(
        seed=0,
        n_folds=3,
        cache_dir=str(cache_dir),
        generator=GeneratorConfig(epochs=20),
        classifier=ClassifierConfig(max_epochs=120, patience=15),
    )
    return fit(small_dataset, tmp_path_factory.mktemp("ws") / "small-ws", cfg, progress=silent).path


def quick_fit(data: Path, out: Path, cache_dir: Path, *, epochs: int = 5, max_epochs: int = 20, **overrides):
    """Fit a workspace fast (few epochs, 2 folds, no maps) and open it."""
    from core.classifiers import ClassifierConfig
    from core.phrases.generator import GeneratorConfig
    from core.pipeline import FitConfig, fit
    from core.progress import silent

    settings = {"n_folds": 2, "projections": False, "cache_dir": str(cache_dir), **overrides}
    cfg = FitConfig(**settings, generator=GeneratorConfig(epochs=epochs), classifier=ClassifierConfig(max_epochs=max_epochs))
    return fit(data, out, cfg, progress=silent)


@pytest.fixture(scope="session")
def untested_workspace(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labels, every image labelled and in the training split, fitted with caption labels on:
    the test metrics are undefined, and the caption teacher has no unlabelled image to label."""
    data = edit_manifest(write_subset(tmp_path_factory.mktemp("untested"), SMALL_LABELS[:3], per_label=8), split="train")
    return quick_fit(data, tmp_path_factory.mktemp("ws") / "untested-ws", cache_dir, caption_labels="on").path


@pytest.fixture(scope="session")
def extended_workspace(fitted_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fitted workspace with semantic retrieval and tag-neighbourhood models fitted (few epochs)."""
    from core.retrieval.model import RetrievalConfig
    from core.retrieval.semantic import fit_retrieval
    from core.tags.annotate import fit_tag_models
    from core.tags.models import TagModelConfig
    from core.workspace import open_workspace

    dest = tmp_path_factory.mktemp("ext") / "ws"
    shutil.copytree(fitted_workspace, dest)
    ws = open_workspace(dest)
    fit_retrieval(ws, RetrievalConfig(epochs=15), r_max=20)
    fit_tag_models(ws, settings=((3, 6), (6, 12)), config=TagModelConfig(epochs=15))
    return dest
