"""Time of each fit stage, from cold caches (a fresh feature cache), maps included.

Writes ``bench/results/fit_stages.json``.

    python bench/fit_stages.py assets/demo ../shared/datasets/ifct-food
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.pipeline import FitConfig, fit  # noqa: E402
from core.progress import silent  # noqa: E402

STAGES = ["load", "features", "phrase_generator", "text_embeddings", "classifiers", "zeroshot", "projections", "total"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fit_stages.json"))
    args = ap.parse_args()
    rows = []
    for data in map(Path, args.datasets):
        name = "demo" if data.resolve() == (ROOT / "assets" / "demo").resolve() else data.resolve().name
        with tempfile.TemporaryDirectory() as tmp:
            cfg = FitConfig(cache_dir=str(Path(tmp) / "cache"))  # cold: nothing cached
            ws = fit(data, Path(tmp) / "ws", cfg, progress=silent)
            rows.append({"dataset": name, "images": ws.manifest["dataset"]["n_items"], "timings_s": ws.manifest["timings_s"]})
    print(f"{'dataset':<12}{'images':>8}" + "".join(f"{s:>17}" for s in STAGES))
    for r in rows:
        print(f"{r['dataset']:<12}{r['images']:>8}" + "".join(f"{r['timings_s'].get(s, 0):>17.1f}" for s in STAGES))
    meta = {"machine": platform.platform(), "cpus": os.cpu_count()}
    Path(args.out).write_text(json.dumps({**meta, "runs": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
