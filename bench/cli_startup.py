"""CLI start-up: wall time of ``python -m core`` commands that need no model, and of one that does.

Each command runs ``--runs`` times as a new process (what a user or a script pays per call), in each
``--repo`` given (e.g. this branch and a ``git worktree`` of main as the reference), interleaved run by
run so both see the same machine load. The commands:

* ``--help``, ``labels --help``: argument parsing only;
* ``evaluate --json``, ``labels history --json``: read a fitted workspace's files (no model);
* ``predict`` one image: loads the models (the reference for a command that needs them).

The workspace (``--workspace``) is any fitted one; by default the tests' small demo subset
(6 labels x 14 images, ``tests/conftest.py``) is fitted once with the CLI (2 folds, no maps) into
``$PIXCTX_CACHE_DIR/bench-cli-startup``. Prints a table (median and min seconds) and writes
``bench/results/cli_startup.json``.

    python bench/cli_startup.py                                   # this checkout only
    git worktree add --detach /tmp/ref 9688e66
    python bench/cli_startup.py --repo after=. --repo before=/tmp/ref
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import default_cache_dir  # noqa: E402
from tests.conftest import DEMO, demo_rows, write_subset  # noqa: E402


def commands(workspace: Path) -> dict[str, list[str]]:
    """The timed command lines (after ``python -m core``), by name."""
    image = str(DEMO / next(r["image"] for r in demo_rows() if r["label"] == "animals/birds"))
    ws = ["--workspace", str(workspace)]
    return {
        "--help": ["--help"],
        "labels --help": ["labels", "--help"],
        "evaluate --json": ["evaluate", *ws, "--json"],
        "labels history --json": ["labels", "history", *ws, "--json"],
        "predict (1 image)": ["predict", *ws, image, "--json"],
    }


def small_workspace() -> Path:
    """The tests' small demo subset, fitted once by the CLI (2 folds, no maps) and kept in the cache."""
    out = default_cache_dir() / "bench-cli-startup" / "ws"
    if not (out / "manifest.json").is_file():
        data = write_subset(Path(tempfile.mkdtemp(prefix="cli-startup-data-")))
        fit = [sys.executable, "-m", "core", "fit", str(data), "--workspace", str(out), "--no-maps", "--seed", "0"]
        subprocess.run(fit, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out


def time_command(repo: Path, args: list[str]) -> float:
    """Seconds for ``python -m core ARGS`` to run to its end in ``repo`` (a non-zero exit is an error)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", action="append", default=None, help="NAME=PATH: a checkout to time (repeatable; default: this one)")
    ap.add_argument("--workspace", type=Path, default=None, help="a fitted workspace (default: the small one, fitted once)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.json")
    args = ap.parse_args()

    repos = dict(r.split("=", 1) for r in args.repo) if args.repo else {"this": str(ROOT)}
    repos = {name: Path(path).resolve() for name, path in repos.items()}
    workspace = (args.workspace or small_workspace()).resolve()
    cmds = commands(workspace)
    times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in cmds} for name in repos}
    for _ in range(args.runs):  # interleaved: every checkout sees the same machine load
        for c, argv in cmds.items():
            for name, repo in repos.items():
                times[name][c].append(round(time_command(repo, argv), 3))

    print(f"{'command':<24}" + "".join(f"{name + ' median':>16}{'min':>8}" for name in repos))
    for c in cmds:
        print(f"{c:<24}" + "".join(f"{statistics.median(times[n][c]):>16.2f}{min(times[n][c]):>8.2f}" for n in repos))
    result = {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "python": sys.version.split()[0],
        "workspace": str(workspace),
        "runs": args.runs,
        "repos": {name: str(path) for name, path in repos.items()},
        "commands": {c: " ".join(["python -m core", *argv]) for c, argv in cmds.items()},
        "seconds": times,
        "median_s": {n: {c: statistics.median(v) for c, v in t.items()} for n, t in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
