"""Planted label errors: precision@100/200 of the label-error queue per out-of-fold source, and the
time of the first queue build.

5% of the workspace's training labels are flipped to another label drawn uniformly (seed 0), as a
labeler's corrections would be (the workspace's embeddings are reused, its models are not: every
source cross-validates on the flipped labels). Sources:

* ``product`` -- the multimodal classifier, 5-fold, ranked by the product's queue (cleanlab);
* ``best`` -- the workspace's best model on its validation rows, 5-fold (a caption model's teacher
  refitted per fold), same queue;
* ``linear`` -- the product's logistic regression on the visual features and caption embeddings
  (``core.labels.oof.linear_features``), 5-fold, same queue;
* ``cleanlab+sklearn LR (visual)`` -- the reference recipe: ``cross_val_predict(LogisticRegression())``
  on the visual features, ranked by ``cleanlab.rank.get_label_quality_scores``;
* ``cleanlab+sklearn LR (visual+captions)`` -- the same recipe on the product's linear features;
* ``product (previous ranking)`` -- the product's out-of-fold probabilities ranked as before this
  change (given-label probability among rows whose top prediction differs).

precision@k counts planted rows among the first k of the ranking (flagged rows first, then every
other labelled row by label quality), recall@k the share of the planted rows found there. Writes
``bench/results/label_errors_<name>.json`` (the dataset's folder name, or ``<name>_workspace``
with ``--workspace``).

    python bench/label_errors.py [--seeds 0,1,2,3,4]  # the demo dataset: linear sources (features from the cache)
    python bench/label_errors.py --workspace WS   # a fitted workspace: every source through the product's queue
    python bench/label_errors.py --workspace WS --hide-aside  # a --label-fraction fit: only its kept labels exist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.labels.issues import rank_label_issues  # noqa: E402
from core.labels.oof import linear_features, linear_oof, out_of_fold, source_title  # noqa: E402
from core.labels.queue import review_queue  # noqa: E402
from core.training import label_targets  # noqa: E402
from core.vectors import l2n  # noqa: E402
from core.workspace import open_workspace  # noqa: E402

KS = (100, 200)


def plant(labels: list[list[str]], train: np.ndarray, names: list[str], fraction: float, seed: int):
    """``labels`` with ``fraction`` of the ``train`` rows flipped to another label, and the flipped rows."""
    labels = [list(v) for v in labels]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(train, round(fraction * len(train)), replace=False))
    for r in rows:
        others = [lab for lab in names if lab != labels[r][0]]
        labels[r] = [others[rng.integers(len(others))]]
    return labels, rows


def dataset_inputs(data: Path) -> tuple[list[list[str]], np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(labels, training rows, label names, L2-normalised visual features, the product's linear
    features) of a dataset, without a workspace: the backbone's features and the caption
    embeddings come from the feature cache (computed once)."""
    from core.backbones import create_backbone
    from core.captions import caption_texts
    from core.data import load_dataset
    from core.features import FeatureCache, cache_key, default_cache_dir, embed_images
    from core.text import TextEncoder, caption_embeddings

    ds = load_dataset(data)
    backbone = create_backbone("efficientnet-lite0")
    feats, errors, _ = embed_images(
        list(ds.items["path"]), backbone, cache=FeatureCache(default_cache_dir(), cache_key(backbone)), progress=lambda *a: None
    )
    ok = np.array([i not in errors for i in range(len(ds.items))])
    items = ds.items[ok].reset_index(drop=True)
    labels = [list(v) for v in items["labels"]]
    train = np.flatnonzero((items["split"] != "test").to_numpy() & np.array([bool(v) for v in labels]))
    names = sorted({lab for i in train for lab in labels[i]})
    texts = caption_texts(list(items["text"]), list(items["tags"]))
    captions = caption_embeddings(texts, TextEncoder(None), default_cache_dir())  # as the fit stores them
    return labels, train, names, l2n(feats[ok]), linear_features(feats[ok], captions)


def precision(ranking: np.ndarray, planted: set[int]) -> dict[str, float]:
    """precision@k and recall@k of the planted rows, for each k of :data:`KS`."""
    out = {}
    for k in KS:
        hits = len(set(ranking[:k].tolist()) & planted)
        out |= {f"p@{k}": round(hits / k, 3), f"r@{k}": round(hits / max(1, len(planted)), 3)}
    return out


def reference_ranking(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """cleanlab's documented recipe on a scikit-learn logistic regression."""
    import cleanlab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    known = np.flatnonzero(y >= 0)
    cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    proba = cross_val_predict(LogisticRegression(max_iter=1000), x[known], y[known], cv=cv, method="predict_proba")
    issues = cleanlab.filter.find_label_issues(y[known], proba, return_indices_ranked_by="self_confidence")
    scores = cleanlab.rank.get_label_quality_scores(y[known], proba)
    by_score = np.argsort(scores, kind="stable")
    flag = np.zeros(len(known), dtype=bool)
    flag[issues] = True
    return known[np.concatenate([issues, by_score[~flag[by_score]]])], len(issues)


def previous_ranking(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The queue before cleanlab: given-label probability, among rows predicted otherwise."""
    known = y >= 0
    given = np.where(known, proba[np.arange(len(y)), np.maximum(y, 0)], np.inf)
    flagged = np.flatnonzero(known & (proba.argmax(1) != y))
    rest = np.flatnonzero(known & (proba.argmax(1) == y))
    return np.concatenate([flagged[np.argsort(given[flagged], kind="stable")], rest[np.argsort(given[rest], kind="stable")]])


def workspace_sources(ws, current: list[list[str]], y: np.ndarray, planted: set[int], sources: list[str]) -> list[dict]:
    """Each source through the product's queue: precision, and the first and cached build times."""
    rows = []
    for source in sources:
        t = time.perf_counter()
        queue = review_queue(ws, "label_errors", current=current, source=source, limit=200)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        review_queue(ws, "label_errors", current=current, source=source, limit=200)
        again_s = time.perf_counter() - t
        proba = out_of_fold(ws, source, current=current)
        found = rank_label_issues(y, proba, ws.multilabel)
        rows.append(
            {
                "source": source,
                "title": source_title(ws, source),
                **precision(found.ranking, planted),
                "flagged": len(found.order),
                "queue_hits_top50": len({q.row for q in queue[:50]} & planted),
                "first_queue_s": round(first_s, 2),
                "cached_queue_s": round(again_s, 2),
            }
        )
        if source == "product":
            rows.append({"source": "product (previous ranking)", **precision(previous_ranking(proba, y), planted)})
    return rows


def dataset_rows(labels, train, names, x, xl, fraction: float, seed: int) -> list[dict]:
    """The product's linear source and the two reference recipes on one planted draw."""
    current, planted_rows = plant(labels, train, names, fraction, seed)
    y = label_targets(current, names, False)
    planted = set(planted_rows.tolist())
    t = time.perf_counter()
    proba = linear_oof(xl, y, len(names), False, seed=seed)
    found = rank_label_issues(y, proba, False)
    rows = [
        {
            "source": "linear",
            **precision(found.ranking, planted),
            "flagged": len(found.order),
            "first_queue_s": round(time.perf_counter() - t, 2),
        }
    ]
    return rows + reference_rows(x, xl, y, planted, seed)


def reference_rows(x: np.ndarray, xl: np.ndarray, y: np.ndarray, planted: set[int], seed: int) -> list[dict]:
    rows = []
    for name, feats in (("cleanlab+sklearn LR (visual)", x), ("cleanlab+sklearn LR (visual+captions)", xl)):
        t = time.perf_counter()
        ref, n_ref = reference_ranking(feats, y, seed)
        rows.append(
            {"source": name, **precision(ref, planted), "flagged": n_ref, "first_queue_s": round(time.perf_counter() - t, 2)}
        )
    return rows


def mean_rows(per_seed: list[list[dict]]) -> list[dict]:
    """Each source's precision averaged over seeds (and its lowest p@100)."""
    out = []
    for i, first in enumerate(per_seed[0]):
        runs = [rows[i] for rows in per_seed]
        mean = {k: round(float(np.mean([r[k] for r in runs])), 3) for k in ("p@100", "p@200")}
        out.append({"source": first["source"], **mean, "min p@100": min(r["p@100"] for r in runs)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=None, help="a fitted workspace: every source through the product's queue")
    ap.add_argument(
        "--data", default=str(ROOT / "assets" / "demo"), help="without --workspace: this dataset, linear sources only"
    )
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0, help="the planted draw (and folds) with --workspace")
    ap.add_argument("--seeds", default="0", help="without --workspace: comma-separated planted draws (the table shows the first)")
    ap.add_argument("--sources", default="linear,best,product", help="comma-separated out-of-fold sources to measure")
    ap.add_argument(
        "--hide-aside",
        action="store_true",
        help="with --workspace: the training labels a --label-fraction fit kept aside are hidden (no label), as in a "
        "dataset labelled that sparsely; else they stay, as the app shows them",
    )
    ap.add_argument("--out", default=None, help="result JSON (default: bench/results/label_errors_<name>.json)")
    args = ap.parse_args()
    if args.out is None:
        name = f"{Path(args.workspace).name}_workspace" if args.workspace else Path(args.data).name
        args.out = str(ROOT / "bench" / "results" / f"label_errors_{name}.json")
    summary: list[dict] = []
    if args.workspace:
        src = Path(args.workspace)
        seeds = [args.seed]
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "ws"
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("oof", "labels.sqlite*"))  # cold: nothing cached
            ws = open_workspace(dest)
            train = np.flatnonzero(ws.items["labelled"].to_numpy())
            current, planted_rows = plant(list(ws.items["labels"]), train, ws.labels, args.fraction, args.seed)
            if args.hide_aside:
                aside = ~ws.items["labelled"].to_numpy() & (ws.items["split"].to_numpy() != "test")
                current = [[] if aside[r] else labs for r, labs in enumerate(current)]
            y = label_targets(current, ws.labels, ws.multilabel)
            planted = set(planted_rows.tolist())
            rows = workspace_sources(ws, current, y, planted, args.sources.split(","))
            rows += reference_rows(l2n(ws.visual), linear_features(ws.visual, ws.caption_vectors), y, planted, args.seed)
        n_items, n_planted = len(y), len(planted)
    else:
        src = Path(args.data)
        labels, train, names, x, xl = dataset_inputs(src)
        seeds = [int(v) for v in args.seeds.split(",")]
        per_seed = [dataset_rows(labels, train, names, x, xl, args.fraction, seed) for seed in seeds]
        rows = per_seed[0]
        summary = mean_rows(per_seed) if len(seeds) > 1 else []
        n_items, n_planted = len(labels), round(args.fraction * len(train))
    print(f"{n_planted} planted errors among {n_items} rows ({args.fraction:.0%} of the training labels, seed {seeds[0]})")
    print(f"{'source':<40}{'p@100':>7}{'r@100':>7}{'p@200':>7}{'flagged':>9}{'first s':>9}{'cached s':>9}")
    for r in rows:
        print(
            f"{r['source']:<40}{r['p@100']:>7.2f}{r['r@100']:>7.2f}{r['p@200']:>7.2f}{r.get('flagged', ''):>9}"
            f"{r.get('first_queue_s', ''):>9}{r.get('cached_queue_s', ''):>9}"
        )
        if r.get("title"):
            print(f"  ({r['title']})")
    if summary:
        print(f"\nmean over seeds {seeds}")
        print(f"{'source':<40}{'p@100':>7}{'p@200':>7}{'min p@100':>11}")
        for r in summary:
            print(f"{r['source']:<40}{r['p@100']:>7.3f}{r['p@200']:>7.3f}{r['min p@100']:>11.2f}")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1)}
    result = {**meta, "input": str(src), "rows": n_items, "planted": n_planted, "fraction": args.fraction, "seeds": seeds}
    result["hide_aside"] = args.hide_aside
    Path(args.out).write_text(json.dumps({**result, "sources": rows, "mean_over_seeds": summary}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
