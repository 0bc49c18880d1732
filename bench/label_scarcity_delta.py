"""Paired top-1 differences between two ``bench/label_scarcity.py`` result files (same draws).

For every (dataset, label fraction, model) present in both files, the mean and 95% t-interval
of ``after - before`` over the seeds both ran, in points: a code change that keeps the paper's
models identical shows 0.0 ± 0.0 for them, and the interval says whether a caption model moved
beyond the noise of the draws.

    python bench/label_scarcity_delta.py bench/results/label_scarcity_fittime4_before.json \\
        bench/results/label_scarcity_fittime4_after.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_scarcity import MODELS, ci95  # noqa: E402


def runs(path: str) -> dict[tuple[str, float, int], dict]:
    """The runs of a result file by (dataset, fraction, seed)."""
    data = json.loads(Path(path).read_text())
    return {(r["dataset"], r["fraction"], r["seed"]): r for r in data["runs"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    args = ap.parse_args()
    before, after = runs(args.before), runs(args.after)
    both = sorted(set(before) & set(after))
    print("| set | labels | seeds | " + " | ".join(f"{m}: after − before" for m in args.models) + " |")
    print("|---|---:|---:|" + "---:|" * len(args.models))
    for name, frac in sorted({(d, f) for d, f, _ in both}):
        keys = [k for k in both if k[:2] == (name, frac)]
        cells = []
        for m in args.models:
            diffs = [100 * (after[k]["metrics"][m]["top1"] - before[k]["metrics"][m]["top1"]) for k in keys]
            mean, half = ci95(diffs)
            cells.append(f"{mean:+.1f} ± {half:.1f}")
        print(f"| {name} | {frac:.0%} | {len(keys)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
