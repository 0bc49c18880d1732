"""The paper's findings (Shah et al., CIKM 2019) on our data: one script, every ablation, 5 seeds.

For each dataset and seed the pipeline is fitted twice (large and small output space, no maps);
every other ablation reuses that fit's stored arrays and only retrains classifiers, so each
answers one question with everything else held fixed:

* A1 baseline / multimodal / text-only / zero-shot (top-1, top-5, macro-F1).
* A2 visual strength: the classifiers' visual vector is weakened by PCA to d dimensions (fitted
  on the training rows); the phrase generator and its phrases stay those of the full features.
* A3 output space: small (softmax classes) vs large (all prototypes).
* A4 bottleneck vs text: visual + generator bottleneck, with and without the phrase text vector.
* A5 few-shot: per-label F1 gain against the label's training count (from A1's fit).
* A6 number of phrases k in {1, 3, 5, 10}, mean vs score-weighted averaging.
* A7 label scarcity: labels for 5-100% of the training images; the generator still learns from
  the text of all of them.
* A8 the control for A7: pseudo-labels for the unlabelled training images from a text classifier
  (logistic regression on MiniLM embeddings of their captions and tags, trained on the labelled
  rows), then the visual-only classifier on labelled + pseudo-labelled images.

Results: ``bench/results/findings_<dataset>.json`` (one entry per seed; a re-run skips seeds
already there). Tables and plots: ``python bench/findings_report.py``.

    python bench/findings.py ../shared/datasets/tuxpaint ../shared/datasets/ifct-food \
        ../shared/datasets/emoji assets/demo --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.classifiers import Classifier  # noqa: E402
from core.config import GeneratorConfig  # noqa: E402
from core.features import default_cache_dir  # noqa: E402
from core.metrics import evaluate  # noqa: E402
from core.pipeline import FitConfig, fit  # noqa: E402
from core.progress import silent  # noqa: E402
from core.text import (  # noqa: E402
    TextEncoder,
    embed_texts,
    phrase_text_vectors,
)
from core.training import label_targets, scarce_labels  # noqa: E402
from core.vectors import l2n  # noqa: E402
from core.workspace import Workspace  # noqa: E402

PCA_DIMS = [2, 4, 8, 16, 64]
KS = [1, 3, 5, 10]
FRACTIONS = [0.05, 0.1, 0.25, 0.5, 1.0]


class Runner:
    """Trains one classifier per call on a fitted workspace's stored arrays."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        items = ws.items
        self.labels = [list(v) for v in items["labels"]]
        self.y = label_targets(self.labels, ws.labels, ws.multilabel)
        self.has = (self.y.sum(1) > 0) if ws.multilabel else (self.y >= 0)
        self.train = (items["split"].to_numpy() != "test") & self.has
        self.test = np.flatnonzero(items["is_test"].to_numpy())
        self.visual = l2n(ws.visual)
        self.text = ws.text_vectors
        self.cfg = ws.config.classifier

    def score(self, x: np.ndarray, fit_rows: np.ndarray, y: np.ndarray | None = None) -> dict[str, float]:
        y = self.y if y is None else y
        clf = Classifier(len(self.ws.labels), self.ws.multilabel, self.cfg).fit(x[fit_rows], y[fit_rows])
        return evaluate(self.y[self.test], clf.predict_proba(x[self.test]), multilabel=self.ws.multilabel)


def weak_visual(visual: np.ndarray, train: np.ndarray, d: int) -> np.ndarray:
    """``visual`` projected on the top-``d`` principal components of the training rows."""
    mean = visual[train].mean(0)
    _, _, vt = np.linalg.svd(visual[train] - mean, full_matrices=False)
    return l2n((visual - mean) @ vt[:d].T)


def caption_pseudo_labels(r: Runner, labelled: np.ndarray, seed: int, cache_root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-labels of unlabelled training rows from their own caption + tags (A8).

    Returns:
        (targets with the pseudo-labels filled in, rows to train on).
    """
    from sklearn.linear_model import LogisticRegression

    items = r.ws.items
    texts = [f"{t} {' '.join(g)}".strip() for t, g in zip(items["text"], items["tags"], strict=True)]
    emb = embed_texts(texts, TextEncoder(r.ws.config.text_model), cache_root, silent)
    idx = np.flatnonzero(labelled)
    unl = np.flatnonzero(r.train & ~labelled & np.array([bool(t) for t in texts]))
    y = r.y.copy()
    if len(unl) and len(np.unique(r.y[idx])) > 1:
        clf = LogisticRegression(max_iter=2000, C=10.0, random_state=seed).fit(emb[idx], r.y[idx])
        y[unl] = clf.predict(emb[unl])
    return y, np.concatenate([idx, unl])


def run_seed(data: Path, seed: int, tmp: Path) -> dict:
    t0 = time.perf_counter()
    large = fit(data, tmp / f"large-{seed}", FitConfig(seed=seed, projections=False), progress=silent)
    small_cfg = FitConfig(seed=seed, projections=False, generator=replace(GeneratorConfig(), output_space="small"))
    small = fit(data, tmp / f"small-{seed}", small_cfg, progress=silent)
    r = Runner(large)
    fit_rows = np.flatnonzero(r.train)
    out: dict = {"seed": seed, "n_train": len(fit_rows), "n_test": len(r.test), "timings_s": large.manifest["timings_s"]}
    out["A1"] = large.metrics
    out["A2"] = []
    for d in [*PCA_DIMS, r.visual.shape[1]]:
        weak = weak_visual(r.visual, r.train, d) if d < r.visual.shape[1] else r.visual
        out["A2"].append(
            {"dim": d, "baseline": r.score(weak, fit_rows), "multimodal": r.score(np.concatenate([weak, r.text], 1), fit_rows)}
        )
    out["A3"] = {"large": large.metrics, "small": small.metrics}
    bott = large.coembedding_crossfit
    out["A4"] = {
        "visual+bottleneck": r.score(np.concatenate([r.visual, bott], 1), fit_rows),
        "visual+bottleneck+text": r.score(np.concatenate([r.visual, bott, r.text], 1), fit_rows),
    }
    out["A5"] = large.manifest["per_label"]
    out["A6"] = []
    ids, scores, emb = large.phrase_ids, large.phrase_scores, large.phrase_embeddings
    for k in KS:
        for weighting in ("mean", "score"):
            text = phrase_text_vectors(emb, ids, scores, k=k, weighting=weighting)
            out["A6"].append(
                {"k": k, "weighting": weighting, "multimodal": r.score(np.concatenate([r.visual, text], 1), fit_rows)}
            )
    out["A7"] = []
    cache_root = default_cache_dir()
    for frac in FRACTIONS:
        labelled = scarce_labels(r.labels, r.train, frac, seed) & r.train
        rows = np.flatnonzero(labelled)
        y_pseudo, pseudo_rows = caption_pseudo_labels(r, labelled, seed, cache_root)
        out["A7"].append(
            {
                "fraction": frac,
                "n_labelled": len(rows),
                "baseline": r.score(r.visual, rows),
                "multimodal": r.score(np.concatenate([r.visual, r.text], 1), rows),
                "text_only": r.score(r.text, rows),
                "pseudo_label_baseline": r.score(r.visual, pseudo_rows, y_pseudo),
            }
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()
    for data in map(Path, args.datasets):
        name = "demo" if data.resolve() == (ROOT / "assets" / "demo").resolve() else data.resolve().name
        out = Path(args.out_dir) / f"findings_{name}.json"
        result = json.loads(out.read_text()) if out.is_file() else {"dataset": name, "split": "the dataset's split column"}
        runs = {r["seed"]: r for r in result.get("runs", [])}
        with tempfile.TemporaryDirectory() as tmp:
            for seed in args.seeds:
                if seed in runs:
                    continue
                runs[seed] = run_seed(data, seed, Path(tmp))
                a1 = runs[seed]["A1"]
                print(
                    f"{name} seed {seed}: "
                    + " ".join(f"{m}={v['top1']:.3f}" for m, v in a1.items())
                    + f" ({runs[seed]['seconds']:.0f} s)",
                    flush=True,
                )
                result["runs"] = [runs[s] for s in sorted(runs)]
                out.write_text(json.dumps(result, indent=1))
    print("done; tables and plots: python bench/findings_report.py")


if __name__ == "__main__":
    main()
