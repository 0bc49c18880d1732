"""Markdown table of ``bench/results/label_scarcity_*.json`` (as in ``docs/results.md``).

python bench/scarcity_table.py tuxpaint ifct-food emoji demo
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def rows(name: str) -> list[str]:
    data = json.loads((RESULTS / f"label_scarcity_{name}.json").read_text())
    n_test = data["runs"][0]["n_test"]
    out = []
    for s in data["summary"]:
        out.append(
            f"| {name} ({n_test}) | {s['fraction']:.0%} | {s['n_labelled']:.0f} | {s['baseline']:.3f} | {s['multimodal']:.3f} "
            f"| {s['text_only']:.3f} | {s['zeroshot']:.3f} | {s['gain_top1']:+.3f} ± {s['gain_ci95']:.3f} |"
        )
    return out


if __name__ == "__main__":
    header = ["dataset (test images)", "labels kept", "labelled images", "baseline", "multimodal", "text only", "zero-shot"]
    print("| " + " | ".join([*header, "gain (95% CI)"]) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in sys.argv[1:]:
        print("\n".join(rows(name)))
