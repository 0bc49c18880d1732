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
is an empty page run the same way, so ``ratio`` is the page's cost over Streamlit's own. The first
row is the process's first run (imports, opening the workspace, Home); above 100k images the
neighbour index is built first, in another process, and timed apart (``neighbour_index_build_s``).
Also recorded: peak resident memory (allocated apart from memory-mapped files) and the load average,
since the machine may be shared. The tiled workspace is written to disk in chunks (1M images:
about 12 GB, 1.5 min); ``--keep DIR`` keeps it for the next run. Writes ``bench/results/app_speed.json``.

    python bench/app_speed.py                      # the demo workspace, scaled to 10,000 images
    python bench/app_speed.py --workspace WS --n 100000
    python bench/app_speed.py --workspace WS --n 1000000 --keep /big/disk/ws1m --out bench/results/app_speed_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.demo import demo_workspace  # noqa: E402
from core.vector_index import EXACT_MAX  # noqa: E402

PAGES = ["home", "explore", "try_image", "compare", "zeroshot", "prototype_map", "annotate", "search", "neighbours"]
PER_IMAGE = (
    "visual", "text_vec", "phrase_ids", "phrase_scores", "bottleneck", "bottleneck_crossfit", "map_images", "caption_vec",
)  # fmt: skip
CHUNK = 50_000  # rows written at a time: tiling 1M images never holds a whole array in memory


def _save_tiled(src: dict[str, np.ndarray], dest: Path, reps: np.ndarray, tiled: tuple[str, ...], seed: int = 0) -> None:
    """Write ``src`` as a safetensors file with the rows of the ``tiled`` keys taken at ``reps``,
    streamed to disk ``CHUNK`` rows at a time (``map_images`` copies spread a little, so the map is
    not ``n / len(src)`` stacked points)."""
    from core.safetensors_mmap import DTYPES

    names = {np.dtype(v).newbyteorder("<"): k for k, v in DTYPES.items()}
    shapes = {k: (len(reps), *v.shape[1:]) if k in tiled else v.shape for k, v in src.items()}
    header, offset = {}, 0
    for k, v in src.items():
        size = int(np.prod(shapes[k])) * v.dtype.itemsize
        header[k] = {"dtype": names[v.dtype.newbyteorder("<")], "shape": list(shapes[k]), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with dest.open("wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for k, v in src.items():
            if k not in tiled:
                fh.write(np.ascontiguousarray(v).tobytes())
                continue
            for s in range(0, len(reps), CHUNK):
                block = v[reps[s : s + CHUNK]]
                if k == "map_images":
                    block = block + rng.normal(0, 0.05, block.shape).astype(block.dtype)
                fh.write(np.ascontiguousarray(block).tobytes())


def scale_workspace(src: Path, dest: Path, n: int) -> Path:
    """Copy workspace ``src`` to ``dest`` with its rows tiled to ``n`` images (streamed to disk)."""
    shutil.copytree(src, dest)
    items = pd.read_parquet(src / "items.parquet")
    reps = np.resize(np.arange(len(items)), n)
    copy = np.arange(n) // len(items)
    big = items.iloc[reps].reset_index(drop=True)
    big["item"] = [f"{it}#{c}" if c else it for it, c in zip(big["item"], copy)]
    big.to_parquet(dest / "items.parquet", index=False)
    n_test = int(big["is_test"].sum())
    del big
    _save_tiled(load_file(str(src / "arrays.safetensors")), dest / "arrays.safetensors", reps, PER_IMAGE)
    preds = load_file(str(src / "predictions.safetensors"))
    _save_tiled(preds, dest / "predictions.safetensors", reps, tuple(preds))
    for extra, keys in (
        ("retrieval/database.safetensors", ("database",)),
        ("tags/neighbours.safetensors", ("ids", "distances", "tag_vectors")),
    ):
        if (src / extra).is_file():  # semantic search and tag models, when fitted: tile their per-image arrays too
            _save_tiled(load_file(str(src / extra)), dest / extra, reps, keys)
    for name in ("labels.sqlite", "labels.sqlite-wal", "labels.sqlite-shm"):  # a fresh label store (item names changed)
        (dest / name).unlink(missing_ok=True)
    shutil.rmtree(dest / "oof", ignore_errors=True)  # label-error caches of the small workspace
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["dataset"]["n_items"] = n
    manifest["n_test"] = n_test
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def _holds(folder: Path, n: int) -> bool:
    """Whether ``folder`` is a workspace tiled to ``n`` images (by an earlier run with ``--keep``)."""
    try:
        return json.loads((folder / "manifest.json").read_text())["dataset"]["n_items"] == n
    except (OSError, ValueError, KeyError):
        return False


def _index_build_s(ws: Path) -> float:
    """Seconds to build Explore's neighbour index above 100k images (the fit's ``neighbour index``
    stage; pages then read it from ``WS/index/``), in another process so that this one opens the
    workspace first in the app, as a fitted one: the tiled workspace is not fitted, so its index is
    built here, by the code the fit runs."""
    code = (
        "import sys, time; from core.vector_index import visual_index; from core.workspace import open_workspace; "
        "w = open_workspace(sys.argv[1]); w.visual; t = time.perf_counter(); visual_index(w.visual, w.path); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ws)], cwd=ROOT, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _timed(at) -> float:
    t = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return dt


class MemoryWatch:
    """Peak resident memory of this process, sampled every 0.2 s: anonymous (what the process
    allocated) apart from file-backed pages (memory-mapped files: page cache the OS can drop)."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> dict[str, int]:
        status = Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []
        return {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in status if ln.startswith(("RssAnon", "RssFile"))}

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for k, v in self.now().items():
                self.peak[k] = max(self.peak[k], v)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {f"peak_{k.lower()}_gib": v / 2**30 for k, v in self.peak.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=None, help="fitted workspace to scale (default: the demo, fitted if needed)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "app_speed.json"))
    ap.add_argument("--keep", default=None, help="tile into this folder and keep it (reused when it already holds --n rows)")
    args = ap.parse_args()

    from streamlit.testing.v1 import AppTest

    src = Path(args.workspace).resolve() if args.workspace else demo_workspace().path
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        keep = Path(args.keep).resolve() if args.keep else None
        if keep is not None and _holds(keep, args.n):
            ws, tile_s = keep, None
        else:
            if keep is not None:
                shutil.rmtree(keep, ignore_errors=True)
            t = time.perf_counter()
            ws = scale_workspace(src, keep or Path(tmp) / "scaled", args.n)
            tile_s = time.perf_counter() - t
        memory = MemoryWatch()
        shutil.rmtree(ws / "index", ignore_errors=True)
        index_s = _index_build_s(ws) if args.n > EXACT_MAX else None

        def app() -> AppTest:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
            at.session_state["workspace_path"] = str(ws)
            return at

        empty = AppTest.from_string("import streamlit as st\nst.title('empty')")
        _timed(empty)
        reference = statistics.median(_timed(empty) for _ in range(args.repeats))
        first = _timed(app())  # the process's first run: opens the workspace and draws Home
        rows.append({"page": "open + home (first run)", "cold_s": first, "warm_s": None, "ratio_to_empty": None})
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
        opens = [b for b in at.button if b.key and b.key.startswith("ex_open_")]
        opens[0].click()
        first_detail = _timed(at)  # builds the neighbour index above 100k images (cached in WS/index/ after)
        rows.append({"page": "explore: first image opened", "cold_s": first_detail, "warm_s": None, "ratio_to_empty": None})
        for k in range(1, args.repeats + 1):
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
        peak, load_after = memory.stop(), os.getloadavg()

    print(f"{args.n:,}-image workspace (tiled from {src.name}); empty-page reference {reference * 1000:.1f} ms")
    print(f"{'page':<30}{'cold s':>9}{'warm s':>9}{'x empty':>9}")
    for r in rows:
        cold, warm, ratio = (
            f"{r[k]:{f}}" if r[k] is not None else "—"
            for k, f in (("cold_s", ".3f"), ("warm_s", ".3f"), ("ratio_to_empty", ".1f"))
        )
        print(f"{r['page']:<30}{cold:>9}{warm:>9}{ratio:>9}")
    if index_s is not None:
        print(f"neighbour index (PCA projection of every visual feature, once per fit): built in {index_s:.1f} s")
    print(
        f"peak memory: {peak['peak_rssanon_gib']:.2f} GiB allocated, {peak['peak_rssfile_gib']:.2f} GiB of mapped files; "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    out = {
        "n_images": args.n,
        "source_workspace": src.name,
        "reference_empty_page_s": reference,
        "repeats": args.repeats,
        "tile_s": tile_s,
        "neighbour_index_build_s": index_s,
        "memory": peak,
        "load_average_1m_before_after": [load_before[0], load_after[0]],
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
