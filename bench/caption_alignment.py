"""Would aligning the caption labels' class shares with the human labels' make them better? (Not adopted.)

The caption-label teacher (:func:`core.captions.caption_labels`, default settings) gives every
unlabelled training row with a caption a probability per label. Its labels are the argmax. This
script also tries Sinkhorn balancing of those probabilities (rows renormalised, columns scaled
until the mean probability of each label equals a target share; the self-labelling step of SwAV,
a stronger form of ReMixMatch's distribution alignment). The target is the labelled rows' class
shares, add-``alpha`` smoothed (Dirichlet posterior mean). It reports the caption labels' accuracy
on those rows, in three labelling regimes at 10% labels:

* ``stratified``: 10% of each label's training rows, at least one (``bench/label_scarcity.py``'s draw);
* ``random``: 10% of the training rows drawn at random, whatever their labels (a user who labels
  what comes first);
* ``zipf``: the stratified draw on a training set made more imbalanced (the rows of the label of
  rank r kept at a share 1 / r^0.7, at least 2; ranks random).

Only logistic regressions are fitted (a few minutes in all); features come from the fitted
scratch workspaces of ``bench/label_scarcity.py``.

    python bench/caption_alignment.py ../shared/datasets/tuxpaint assets/demo --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.caption_teachers import teacher_inputs, write_json  # noqa: E402
from bench.label_scarcity import ci95, dataset_name, workspace_for  # noqa: E402
from core.captions import CaptionLabelConfig, caption_labels  # noqa: E402
from core.config import FitConfig  # noqa: E402
from core.text import TextEncoder  # noqa: E402
from core.training import has_target, label_targets, scarce_labels  # noqa: E402

REGIMES = ("stratified", "random", "zipf")


def sinkhorn(p: np.ndarray, target: np.ndarray, iters: int = 100) -> np.ndarray:
    """``p`` (rows sum to 1) with its columns scaled so that their means approach ``target``."""
    q = p.copy()
    for _ in range(iters):
        q = q * (target / np.maximum(q.mean(0), 1e-12))
        q /= q.sum(1, keepdims=True)
    return q


def draw(regime: str, y: np.ndarray, labels: list[list[str]], train0: np.ndarray, frac: float, seed: int):
    """The training rows and the labelled rows of one draw of ``regime``."""
    rng = np.random.default_rng(100 + seed)
    train = train0.copy()
    if regime == "zipf":
        for rank, c in enumerate(rng.permutation(int(y.max()) + 1)):
            idx = np.flatnonzero(train0 & (y == c))
            train[rng.permutation(idx)[max(2, round(len(idx) / (rank + 1) ** 0.7)) :]] = False
    if regime == "random":
        idx = np.flatnonzero(train)
        labelled = np.zeros_like(train)
        labelled[rng.choice(idx, max(4, int(frac * len(idx))), replace=False)] = True
        return train, labelled
    return train, scarce_labels(labels, train, frac, seed) & train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--scratch", default=str(ROOT / "bench" / "_scratch"), help="fitted workspaces (as label_scarcity.py)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "caption_alignment.json"))
    args = ap.parse_args()
    encoder = TextEncoder(FitConfig().text_model)
    runs = []
    for data in map(Path, args.datasets):
        ws = workspace_for(data, 0, Path(args.scratch))
        if ws.multilabel:
            print(f"{data}: multi-label, skipped (the alignment is for single-label sets)")
            continue
        texts, emb, names = teacher_inputs(ws, encoder)
        labels = [list(v) for v in ws.items["labels"]]
        y = label_targets(labels, ws.labels, False)
        train0 = (ws.items["split"].to_numpy() != "test") & has_target(y, False)
        for regime in REGIMES:
            for seed in args.seeds:
                train, labelled = draw(regime, y, labels, train0, args.fraction, seed)
                todo = train & ~labelled & np.array([bool(t) for t in texts])
                caps = caption_labels(
                    texts, emb, y, labelled, train, False, CaptionLabelConfig(), seed, visual=ws.visual, label_names=names
                )
                p = caps.predicted[todo].astype(np.float64) + 1e-9
                p /= p.sum(1, keepdims=True)
                counts = np.bincount(y[labelled], minlength=p.shape[1]).astype(float)
                acc = {"argmax": float((p.argmax(1) == y[todo]).mean())}
                for a in args.alphas:
                    acc[f"alpha={a:g}"] = float((sinkhorn(p, (counts + a) / (counts + a).sum()).argmax(1) == y[todo]).mean())
                runs.append(
                    {"dataset": dataset_name(data), "regime": regime, "seed": seed, "rows": int(todo.sum()), "accuracy": acc}
                )
                print(json.dumps(runs[-1]), flush=True)
    heads = [f"alpha={a:g}" for a in args.alphas]
    print(
        f"\n{'dataset':<10} {'regime':<10} {'argmax':>7} " + " ".join(f"{h:>18}" for h in heads) + "   (points vs argmax, 95% CI)"
    )
    summary = []
    for name in dict.fromkeys(r["dataset"] for r in runs):
        for regime in REGIMES:
            sel = [r["accuracy"] for r in runs if r["dataset"] == name and r["regime"] == regime]
            row = {"dataset": name, "regime": regime, "n_seeds": len(sel), "argmax": ci95([100 * s["argmax"] for s in sel])}
            row.update({h: ci95([100 * (s[h] - s["argmax"]) for s in sel]) for h in heads})
            summary.append(row)
            print(
                f"{name:<10} {regime:<10} {row['argmax'][0]:>7.1f} "
                + " ".join(f"{row[h][0]:>+11.1f} ± {row[h][1]:>4.1f}" for h in heads)
            )
    write_json(args.out, {"fraction": args.fraction, "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
