"""Fit time with caption labels on vs off, same dataset, label fraction and seed, in one run.

Fits twice (``--caption-labels off`` then ``on``; visual features and text embeddings come from
the shared cache, so both fits pay the same for them), prints each stage's seconds and the
ratio of the totals, and writes ``bench/results/caption_fit_time_<dataset>.json``.

    python bench/caption_fit_time.py assets/demo --label-fraction 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import FitConfig  # noqa: E402
from core.pipeline import fit  # noqa: E402
from core.progress import silent  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--label-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--maps", action="store_true", help="include the 2-D maps (as the app's fit does)")
    args = ap.parse_args()
    name = "demo" if Path(args.dataset).resolve() == (ROOT / "assets" / "demo").resolve() else Path(args.dataset).resolve().name
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "on"):
            cfg = FitConfig(label_fraction=args.label_fraction, seed=args.seed, projections=args.maps, caption_labels=mode)
            ws = fit(args.dataset, Path(tmp) / mode, cfg, progress=silent)
            timings[mode] = ws.manifest["timings_s"]
            print(f"captions {mode}: " + " ".join(f"{k}={v:.1f}" for k, v in timings[mode].items()), flush=True)
    ratio = timings["on"]["total"] / timings["off"]["total"]
    print(f"total with caption labels / without: {ratio:.3f}")
    out = ROOT / "bench" / "results" / f"caption_fit_time_{name}.json"
    out.write_text(json.dumps({"dataset": name, **vars(args), "timings_s": timings, "ratio_total": ratio}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
