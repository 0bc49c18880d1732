"""Label scarcity: multimodal vs baseline when only a fraction of the training images keep labels.

The phrase generator learns from the text of *all* training images; the classifiers see labels
for ``--fractions`` of each label's training images (drawn with ``--seeds``). Prints a table and
writes ``bench/results/label_scarcity_<dataset>.json`` with per-seed metrics, the mean gain
(multimodal - baseline top-1) and its 95% confidence interval (t-interval over seeds).

    python bench/label_scarcity.py ../shared/datasets/tuxpaint --fractions 0.2 1.0 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.pipeline import FitConfig, fit
from core.progress import silent


def ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    return float(a.mean()), float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.25, 0.5, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="FitConfig overrides, e.g. top_k=5 generator.epochs=60")
    args = ap.parse_args()
    name = Path(args.dataset).resolve().name
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frac in args.fractions:
            for seed in args.seeds:
                cfg = FitConfig(label_fraction=frac, seed=seed, projections=False)
                for kv in args.set:
                    key, val = kv.split("=", 1)
                    target = cfg
                    *path, last = key.split(".")
                    for p in path:
                        target = getattr(target, p)
                    setattr(target, last, type(getattr(target, last))(val) if getattr(target, last) is not None else val)
                t = time.perf_counter()
                ws = fit(args.dataset, Path(tmp) / "ws", cfg, progress=silent)
                rows.append(
                    {
                        "fraction": frac,
                        "seed": seed,
                        "n_labelled": ws.manifest["n_labelled"],
                        "n_test": ws.manifest["n_test"],
                        "metrics": ws.metrics,
                        "seconds": time.perf_counter() - t,
                    }
                )
                print(
                    f"{name} frac={frac} seed={seed}: " + " ".join(f"{m}={v['top1']:.3f}" for m, v in ws.metrics.items()),
                    flush=True,
                )
    summary = []
    print(f"\n{'fraction':>8} {'labelled':>8} {'baseline':>9} {'multimodal':>10} {'text_only':>9} {'gain':>14}")
    for frac in args.fractions:
        sel = [r for r in rows if r["fraction"] == frac]
        gains = [r["metrics"]["multimodal"]["top1"] - r["metrics"]["baseline"]["top1"] for r in sel]
        g, h = ci95(gains)
        s = {"fraction": frac, "n_labelled": float(np.mean([r["n_labelled"] for r in sel])), "gain_top1": g, "gain_ci95": h}
        for m in ("baseline", "multimodal", "text_only", "zeroshot"):
            s[m] = float(np.mean([r["metrics"][m]["top1"] for r in sel]))
        summary.append(s)
        print(
            f"{frac:>8.2f} {s['n_labelled']:>8.0f} {s['baseline']:>9.3f} {s['multimodal']:>10.3f} {s['text_only']:>9.3f} "
            f"{g:>+7.3f} ±{h:.3f}"
        )
    out = Path(args.out or Path(__file__).parent / "results" / f"label_scarcity_{name}.json")
    out.write_text(
        json.dumps(
            {
                "dataset": name,
                "split": "the dataset's own split column",
                "seeds": args.seeds,
                "overrides": args.set,
                "runs": rows,
                "summary": summary,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
