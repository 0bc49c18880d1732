"""Peak memory of image decoding and of ``predict``, before and after the bounded-decoding fixes (#14, item 9).

Every case runs in a fresh process, once with the current ``core`` and once with a reference
version of ``core`` (``--ref``, default the main commit before the fixes, extracted with
``git archive``); the peak RSS of each process (``ru_maxrss``) is reported with the RSS after the
imports subtracted, so the numbers are what the call itself cost.

Cases (the issue's reproductions):

* ``bomb-png``: a 10,000 x 10,000 RGBA PNG of under 1 MB, decoded as ``fit`` does (``max_side=512``);
* ``large-png``: 7,900 x 7,900 RGBA (just under the new 64 M-pixel limit), same call;
* ``large-jpeg``: 8,000 x 6,000 JPEG, same call;
* ``fit-parallel``: four decoding threads, as ``fit`` runs them, over 4 bomb PNGs and 4 large PNGs
  (the issue measured 3.17 GB at the peak of a fit decoding 4 at once);
* ``predict``: ``Workspace.predict`` on ``--n`` 3,000 x 3,000 JPEGs (needs ``--workspace``).

Usage (writes ``bench/results/decode_memory.json``)::

    python bench/decode_memory.py --workspace WS [--n 96] [--ref 89507a6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "89507a6"  # main before the #14 reliability fixes

CASE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    kind, arg, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    from core.data import load_image, ImageError
    if kind == "predict":
        from core.workspace import open_workspace
        ws = open_workspace(arg)
        ws.predict([Path(extra[0])])  # load the models first: the baseline includes them
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = "ok"
    try:
        if kind == "fit-parallel":
            from concurrent.futures import ThreadPoolExecutor
            def one(p):
                try:
                    return load_image(p, max_side=512).size
                except ImageError:
                    return None
            with ThreadPoolExecutor(max_workers=4) as pool:
                sizes = list(pool.map(one, [arg, *extra]))
            outcome = f"{sum(s is not None for s in sizes)} of {len(sizes)} decoded"
        elif kind == "predict":
            res = ws.predict(sorted(Path(extra[0]).glob("*.jpg")))
            outcome = f"{sum(not isinstance(r, str) and getattr(r, 'ok', True) for r in res)} predicted"
        else:
            im = load_image(arg, max_side=512)
            outcome = f"decoded to {im.size[0]}x{im.size[1]}"
    except ImageError as exc:
        outcome = f"refused: {exc}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "outcome": outcome}))
    """
)


def make_inputs(folder: Path, n: int) -> dict[str, list[str]]:
    """The test images of every case."""
    from PIL import Image

    bomb = folder / "bomb.png"
    Image.new("RGBA", (10_000, 10_000), (255, 255, 255, 255)).save(bomb, optimize=True)
    large = folder / "large.png"
    Image.new("RGBA", (7_900, 7_900), (20, 90, 200, 255)).save(large)
    jpeg = folder / "large.jpg"
    Image.radial_gradient("L").resize((8_000, 6_000)).convert("RGB").save(jpeg, quality=90)
    photos = folder / "photos"
    photos.mkdir()
    base = Image.radial_gradient("L").resize((3_000, 3_000))
    for i in range(n):
        Image.merge("RGB", (base, base.rotate(i * 7), base.transpose(Image.Transpose.FLIP_TOP_BOTTOM))).save(
            photos / f"{i:04d}.jpg", quality=85
        )
    return {
        "bomb-png": [str(bomb)],
        "large-png": [str(large)],
        "large-jpeg": [str(jpeg)],
        "fit-parallel": [str(bomb)] * 4 + [str(large)] * 4,
        "predict": ["WORKSPACE", str(photos)],
    }


def run_case(code_root: Path, kind: str, args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    proc = subprocess.run(
        [sys.executable, "-c", CASE, kind, *args], env=env, capture_output=True, text=True, cwd=code_root, timeout=1800
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:300]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cost_mb"] = round(out["peak_mb"] - out["base_mb"], 1)
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", help="a fitted workspace for the predict case (skipped without)")
    parser.add_argument("--n", type=int, default=96, help="images of the predict case")
    parser.add_argument("--ref", default=REFERENCE, help="git revision of the reference core")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "decode_memory.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixctx-decode-") as tmp:
        tmp_path = Path(tmp)
        ref_root = tmp_path / "ref"
        ref_root.mkdir()
        archive = subprocess.run(["git", "archive", args.ref, "core"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(ref_root)], input=archive.stdout, check=True)
        cases = make_inputs(tmp_path, args.n)
        results = {}
        for kind, case_args in cases.items():
            if kind == "predict":
                if not args.workspace:
                    continue
                case_args = [args.workspace, case_args[1]]
            results[kind] = {"reference": run_case(ref_root, kind, case_args), "current": run_case(ROOT, kind, case_args)}
    report = {
        "reference": args.ref,
        "predict_images": args.n,
        "machine": f"{os.cpu_count()}-core CPU dev machine",
        "cases": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'case':<13} {'reference MB':>13} {'current MB':>11} {'ratio':>6}  outcome (current)")
    for kind, r in results.items():
        ref, cur = r["reference"], r["current"]
        if "error" in ref or "error" in cur:
            print(f"{kind:<13} {ref.get('error', ref.get('cost_mb'))} | {cur.get('error', cur.get('cost_mb'))}")
            continue
        ratio = ref["cost_mb"] / cur["cost_mb"] if cur["cost_mb"] > 0 else float("inf")
        print(f"{kind:<13} {ref['cost_mb']:>13} {cur['cost_mb']:>11} {ratio:>6.1f}  {cur['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
