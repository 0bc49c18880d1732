"""App responsiveness: server-side time of every page and of opening an image's detail.

Scales a fitted workspace (the demo by default) to ``--n`` images by tiling its rows (every
per-image array, prediction and map point is repeated, item names made unique; the models and
phrase space stay the same), then runs each page under ``streamlit.testing.v1.AppTest``:

* cold: a page's first run in the process (the first page also opens the workspace; each
  page builds its own caches);
* warm: the median of ``--repeats`` further runs (what a user waits for on each interaction);
* detail: the rerun after clicking an image in Explore (the detail view, URL update included).

Semantic search and tag neighbours are timed when the source workspace has them fitted
(``python -m core retrieval fit`` / ``tags fit``); otherwise those pages time their "fit me" notice.

Times are server-side script runs (AppTest executes the page without a browser); the reference
is an empty page run the same way, so ``ratio`` is the page's cost over Streamlit's own.
Writes ``bench/results/app_speed.json``.

    python bench/app_speed.py                      # the demo workspace, scaled to 10,000 images
    python bench/app_speed.py --workspace WS --n 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import demo_workspace  # noqa: E402

PAGES = ["home", "explore", "try_image", "compare", "zeroshot", "prototype_map", "annotate", "search", "neighbours"]
PER_IMAGE = ("visual", "text_vec", "phrase_ids", "phrase_scores", "bottleneck", "bottleneck_crossfit", "map_images")


def scale_workspace(src: Path, dest: Path, n: int, seed: int = 0) -> Path:
    """Copy workspace ``src`` to ``dest`` with its rows tiled to ``n`` images."""
    shutil.copytree(src, dest)
    items = pd.read_parquet(src / "items.parquet")
    reps = np.resize(np.arange(len(items)), n)
    copy = np.arange(n) // len(items)
    big = items.iloc[reps].reset_index(drop=True)
    big["item"] = [f"{it}#{c}" if c else it for it, c in zip(big["item"], copy)]
    big.to_parquet(dest / "items.parquet", index=False)
    rng = np.random.default_rng(seed)
    arrays = load_file(str(src / "arrays.safetensors"))
    for key in PER_IMAGE:
        if key in arrays:
            arrays[key] = np.ascontiguousarray(arrays[key][reps])
    if "map_images" in arrays:  # spread the copies a little so the map is not n/len(items) stacked points
        arrays["map_images"] = arrays["map_images"] + rng.normal(0, 0.05, arrays["map_images"].shape).astype(np.float32)
    save_file(arrays, str(dest / "arrays.safetensors"))
    preds = load_file(str(src / "predictions.safetensors"))
    save_file({k: np.ascontiguousarray(v[reps]) for k, v in preds.items()}, str(dest / "predictions.safetensors"))
    for extra, keys in (
        ("retrieval/database.safetensors", ("database",)),
        ("tags/neighbours.safetensors", ("ids", "distances", "tag_vectors")),
    ):
        if (src / extra).is_file():  # semantic search and tag models, when fitted: tile their per-image arrays too
            arrays = load_file(str(src / extra))
            save_file({k: np.ascontiguousarray(v[reps]) if k in keys else v for k, v in arrays.items()}, str(dest / extra))
    (dest / "labels.sqlite").unlink(missing_ok=True)  # a fresh label store (item names changed)
    for side in ("labels.sqlite-wal", "labels.sqlite-shm"):
        (dest / side).unlink(missing_ok=True)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["dataset"]["n_items"] = n
    manifest["n_test"] = int(big["is_test"].sum())
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def _timed(at) -> float:
    t = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=None, help="fitted workspace to scale (default: the demo, fitted if needed)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "app_speed.json"))
    args = ap.parse_args()

    from streamlit.testing.v1 import AppTest

    src = Path(args.workspace).resolve() if args.workspace else demo_workspace().path
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = scale_workspace(src, Path(tmp) / "scaled", args.n)

        def app() -> AppTest:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
            at.session_state["workspace_path"] = str(ws)
            return at

        empty = AppTest.from_string("import streamlit as st\nst.title('empty')")
        _timed(empty)
        reference = statistics.median(_timed(empty) for _ in range(args.repeats))
        for page in PAGES:
            at = app()
            at.run()  # st.navigation registers the pages (a custom url_path is unknown before); opens the workspace
            at.switch_page(f"views/{page}.py")
            cold = _timed(at)
            warm = statistics.median(_timed(at) for _ in range(args.repeats))
            rows.append({"page": page, "cold_s": cold, "warm_s": warm, "ratio_to_empty": warm / reference})
        at = app()
        at.run()
        at.switch_page("views/explore.py")
        _timed(at)
        details = []
        for k in range(args.repeats):
            button = [b for b in at.button if b.key and b.key.startswith("ex_open_")][k]
            button.click()
            details.append(_timed(at))
        rows.append(
            {
                "page": "explore: open an image",
                "cold_s": None,
                "warm_s": statistics.median(details),
                "ratio_to_empty": statistics.median(details) / reference,
            }
        )

    print(f"{args.n:,}-image workspace (tiled from {src.name}); empty-page reference {reference * 1000:.1f} ms")
    print(f"{'page':<26}{'cold s':>9}{'warm s':>9}{'x empty':>9}")
    for r in rows:
        cold = f"{r['cold_s']:.3f}" if r["cold_s"] is not None else "—"
        print(f"{r['page']:<26}{cold:>9}{r['warm_s']:>9.3f}{r['ratio_to_empty']:>9.1f}")
    out = {
        "n_images": args.n,
        "source_workspace": src.name,
        "reference_empty_page_s": reference,
        "repeats": args.repeats,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
