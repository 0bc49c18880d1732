"""Fit time with caption labels on vs off, same dataset, label fraction and seed, in one run.

Fits once per mode to warm the shared caches (visual features, text embeddings, phrase
generator, caption labels: not timed; skip with ``--no-warmup``; ``--cold`` gives every fit an
empty cache instead, as a collection's first fit), then ``--repeats`` times with
``--caption-labels off`` and ``on`` (alternating which goes first, so a change of the machine's
load hits both), prints each stage's seconds and the ratio of the median totals, and writes
``bench/results/caption_fit_time_<dataset>.json``. A warm refit with the same labels reads its
caption labels from the cache (:mod:`core.caption_cache`); with ``--teacher-miss`` every fit sees
the warm caches but no cached caption labels, so it runs the caption-label teacher, as a refit
after label edits does. ``--set`` overrides the fit's config (e.g. ``classifier.caption_patience=25``).

    python bench/caption_fit_time.py assets/demo --label-fraction 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_scarcity import overridden  # noqa: E402
from core.config import FitConfig  # noqa: E402
from core.pipeline import fit  # noqa: E402
from core.progress import silent  # noqa: E402


def without_caption_labels(cache: Path, folder: Path) -> Path:
    """A cache folder that links to every entry of ``cache`` except its caption labels (warm
    features and text embeddings, a caption-label teacher that has to run)."""
    folder.mkdir(parents=True)
    for entry in cache.iterdir() if cache.is_dir() else ():
        if entry.name != "caption_labels":
            (folder / entry.name).symlink_to(entry.resolve())
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--label-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--maps", action="store_true", help="include the 2-D maps (as the app's fit does)")
    ap.add_argument("--repeats", type=int, default=1, help="fits per mode (median total reported)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed fit that fills the caches")
    ap.add_argument("--cold", action="store_true", help="every fit starts from an empty cache (a first fit; no warm-up)")
    ap.add_argument(
        "--reuse-fusion", action="store_true", help="multimodal_captions reuses multimodal's fusion weight (reuse_fusion on)"
    )
    ap.add_argument("--warm-start", action="store_true", help="caption models fine-tune their paper twin (warm_start on)")
    ap.add_argument("--teacher-miss", action="store_true", help="every fit runs the caption-label teacher (no cached labels)")
    ap.add_argument("--set", nargs="*", default=[], help="FitConfig overrides, e.g. classifier.caption_patience=25")
    ap.add_argument("--out", default=None, help="result file (default bench/results/caption_fit_time_<dataset>.json)")
    args = ap.parse_args()
    name = "demo" if Path(args.dataset).resolve() == (ROOT / "assets" / "demo").resolve() else Path(args.dataset).resolve().name
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:

        def one(mode: str, tag: str) -> dict:
            cache = str(Path(tmp) / f"cache-{mode}-{tag}") if args.cold else None
            cfg = FitConfig(
                label_fraction=args.label_fraction, seed=args.seed, projections=args.maps, caption_labels=mode, cache_dir=cache
            )
            cfg.classifier.reuse_fusion = args.reuse_fusion
            cfg.classifier.warm_start = args.warm_start
            overridden(cfg, args.set)
            if args.teacher_miss and not args.cold:
                cfg.cache_dir = str(without_caption_labels(cfg.cache_root(), Path(tmp) / f"cache-{mode}-{tag}"))
            return fit(args.dataset, Path(tmp) / f"{mode}-{tag}", cfg, progress=silent).manifest["timings_s"]

        if not (args.no_warmup or args.cold):
            one("off", "warmup")
            one("on", "warmup")
        for r in range(args.repeats):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                runs[mode].append(one(mode, str(r)))
                print(f"captions {mode}: " + " ".join(f"{k}={v:.1f}" for k, v in runs[mode][-1].items()), flush=True)
    total = {mode: float(np.median([t["total"] for t in runs[mode]])) for mode in runs}
    ratio = total["on"] / total["off"]
    print(f"median total: off {total['off']:.1f} s, on {total['on']:.1f} s; with caption labels / without: {ratio:.3f}")
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"caption_fit_time_{name}.json"
    info = {**vars(args), "dataset": name, "load_average": os.getloadavg(), "cpu_count": os.cpu_count()}
    out.write_text(json.dumps({**info, "timings_s": runs, "median_total_s": total, "ratio_total": ratio}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
