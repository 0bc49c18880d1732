"""Background fits: a detached ``python -m core ... --job`` process that any app session can watch.

A job that writes workspace ``WS`` keeps its files beside it, in ``WS.job/``::

    status.json   state, stages (done/total), overall fraction and ETA; rewritten atomically
    log.txt       the process's output
    lock          held (``flock``) by the running process: a job runs if and only if it is locked

Closing a browser tab does not stop a job (it is its own process session); every tab reads the same
``status.json``. Rerunning a stopped job resumes it: image features and phrase embeddings are cached by
content hash, so the finished stages are not computed again.

The overall fraction weighs the stages by their measured seconds per image: the last finished job's
on this machine (``<cache>/job_profile.json``), else the demo's cold fit measured on the 2-core
development machine (``docs/results.md``, B3). The ETA is the current stage's measured rate plus the
remaining stages' seconds per image scaled by how fast this run has been against them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

# Seconds per image of each stage group, measured (demo, 2,536 images, cold caches, 2-core CPU).
DEFAULT_PROFILE = {
    "embed images": 0.0446,
    "neighbour index": 0.0000208,  # above 100k images only (B7: 20.8 s at 1M)
    "phrase generator": 0.0115,
    "embed phrases": 0.0071,
    "classifiers": 0.0072,
    "2-D map": 0.0193,
    "semantic embedding": 0.0080,
    "tag models": 0.0200,
}
WRITE_EVERY_S = 0.5
START_GRACE_S = 120.0  # a started process has this long to take the job's lock (imports are slow on a busy machine)


def job_dir(workspace: str | Path) -> Path:
    """The folder of the job that writes ``workspace``."""
    ws = Path(workspace).expanduser().resolve()
    return ws.with_name(ws.name + ".job")


def stage_group(stage: str) -> str:
    """The plan entry a progress stage belongs to (``phrase generator (fold 2/5)`` -> ``phrase generator``)."""
    return stage.split(" (")[0]


@dataclass
class PlanStep:
    """One planned stage group: its name and how many sub-stages report under it."""

    group: str
    parts: int = 1


def fit_plan(n_folds: int = 5, *, generator: bool = True, maps: bool = True, extras: bool = False) -> list[PlanStep]:
    """The stage groups of a fit (``extras``: the demo's semantic search and tag models too)."""
    plan = [PlanStep("embed images"), PlanStep("neighbour index")]  # the index: above 100k images only
    if generator:
        plan.append(PlanStep("phrase generator", 1 + (n_folds if n_folds > 1 else 0)))
    plan += [PlanStep("embed phrases"), PlanStep("classifiers")]
    if maps and generator:
        plan.append(PlanStep("2-D map"))
    if extras:
        plan += search_plan() + tags_plan()
    return plan


def search_plan() -> list[PlanStep]:
    """The stage groups of fitting semantic search on a fitted workspace: the (V) and (V+T) embeddings."""
    return [PlanStep("semantic embedding", 2)]


def tags_plan(n_settings: int | None = None) -> list[PlanStep]:
    """The stage groups of fitting the tag models: their tag vectors, one visual-only model, then LTN
    and LTwin per (m, M) setting (``n_settings``: default, every setting of ``core.tags.annotate``)."""
    if n_settings is None:
        from core.tags.annotate import SETTINGS

        n_settings = len(SETTINGS)
    return [PlanStep("tag models", 2 + 2 * n_settings)]


def _profile_path() -> Path:
    return Path(os.environ.get("PIXCTX_CACHE_DIR", Path.home() / ".cache" / "pixctx")).expanduser() / "job_profile.json"


def load_profile() -> dict[str, float]:
    """Seconds per image of each stage group: this machine's last measurements over the defaults."""
    try:
        measured = json.loads(_profile_path().read_text())
    except (OSError, ValueError):
        measured = {}
    return {**DEFAULT_PROFILE, **{k: float(v) for k, v in measured.items() if isinstance(v, (int, float))}}


@dataclass
class _Stage:
    name: str
    done: int = 0
    total: int = 0
    started: float = 0.0
    finished: float | None = None


class JobProgress:
    """A ``core`` progress callback that keeps ``status.json`` up to date (overall fraction, ETA)."""

    def __init__(self, folder: Path, plan: list[PlanStep], command: list[str]) -> None:
        self.folder, self.plan, self.command = folder, plan, command
        self.profile = load_profile()
        self.started = time.time()
        self.stages: list[_Stage] = []
        self.n_images = 0
        self.state, self.error = "running", ""
        self._written = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        cur = self.stages[-1] if self.stages else None
        if cur is None or cur.name != stage:
            if cur is not None and cur.finished is None:
                cur.finished = time.time()
            cur = _Stage(stage, started=time.time())
            self.stages.append(cur)
        cur.done, cur.total = done, total
        if stage == "embed images" and total:
            self.n_images = total
        if total and done >= total and cur.finished is None:
            cur.finished = time.time()
        if time.time() - self._written >= WRITE_EVERY_S or cur.finished is not None:
            self.write()

    # --- the overall view -----------------------------------------------------------------
    def _group_fraction(self, step: PlanStep) -> tuple[float, float | None]:
        """(fraction done, seconds spent) of one plan step."""
        mine = [s for s in self.stages if stage_group(s.name) == step.group]
        if not mine:
            return 0.0, None
        parts = sum(1.0 if s.finished else (s.done / s.total if s.total else 0.0) for s in mine)
        spent = (mine[-1].finished or time.time()) - mine[0].started
        return min(parts / step.parts, 1.0), spent

    def overview(self) -> dict:
        """Overall fraction, the ETA in seconds (None until measurable) and the current stage group."""
        n = max(self.n_images, 1)
        weights = [self.profile.get(step.group, 0.0) * n for step in self.plan]
        views = [self._group_fraction(step) for step in self.plan]
        seen = [i for i, (_, spent) in enumerate(views) if spent is not None]
        if seen:  # stages run in order: a group that a later one follows is finished (or was a cache hit)
            views = [(1.0, spent) if i < seen[-1] else (frac, spent) for i, (frac, spent) in enumerate(views)]
        done_w = sum(w * frac for w, (frac, _) in zip(weights, views))
        # this run's pace against the profile: from the finished groups that did real work, else the running one
        paces = [spent / w for w, (frac, spent) in zip(weights, views) if frac >= 1.0 and spent and w and spent > 0.25 * w]
        current = next((i for i, (frac, spent) in enumerate(views) if frac < 1.0 and spent is not None), None)
        eta = 0.0
        if current is not None:
            frac, spent = views[current]
            if frac > 0.05 and spent and spent > 2.0:
                eta = spent / frac * (1.0 - frac)
                paces = paces or ([spent / (weights[current] * frac)] if weights[current] else [])
            else:
                eta = weights[current] * (1.0 - frac) * (sorted(paces)[len(paces) // 2] if paces else 1.0)
        pace = sorted(paces)[len(paces) // 2] if paces else None
        later = sum(w for i, (w, (frac, spent)) in enumerate(zip(weights, views)) if spent is None and i != current)
        measurable = self.state == "running" and self.n_images > 0 and pace is not None  # "(measured)": a rate of this run
        return {
            "fraction": 1.0 if self.state == "done" else round(done_w / (sum(weights) or 1.0), 4),
            "eta_s": round(eta + later * (pace or 1.0), 1) if measurable else None,
            "group": self.plan[current].group if current is not None else None,
        }

    def write(self) -> None:
        """Write ``status.json`` atomically."""
        self._written = time.time()
        last = self.stages[-1] if self.stages else None
        status = {
            "state": self.state,
            "error": self.error,
            "command": self.command,
            "pid": os.getpid(),
            "started": self.started,
            "updated": self._written,
            "n_images": self.n_images,
            "stage": last.name if last else "starting",
            "done": last.done if last else 0,
            "total": last.total if last else 0,
            "plan": [step.group for step in self.plan],
            "stages": [vars(s) for s in self.stages],
            **self.overview(),
        }
        tmp = self.folder / "status.json.partial"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, self.folder / "status.json")

    def save_profile(self) -> None:
        """Record this run's seconds per image of the stages that did real work (for the next ETA)."""
        if not self.n_images:
            return
        measured = {}
        for step in self.plan:
            frac, spent = self._group_fraction(step)
            prior = self.profile.get(step.group, 0.0) * self.n_images
            if frac >= 1.0 and spent is not None and spent > 0.25 * prior:
                measured[step.group] = round(spent / self.n_images, 6)
        path = _profile_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            old = json.loads(path.read_text()) if path.is_file() else {}
            path.write_text(json.dumps({**old, **measured}, indent=1))
        except (OSError, ValueError):
            pass  # a read-only cache only costs the next ETA its local measurements


class JobRunningError(RuntimeError):
    """Another process is already running the job for this workspace."""


@contextmanager
def job(workspace: str | Path, plan: list[PlanStep], n_images: int = 0) -> Iterator[JobProgress]:
    """Run the body as the workspace's job: hold its lock, report progress, record the outcome.

    One job at a time writes a workspace (a fit, or an add-on fit such as semantic search): they
    share the lock and ``status.json``, whose ``command`` says which job it is.

    Args:
        workspace: the workspace the job writes.
        plan: its stage groups, for the overall fraction and the ETA.
        n_images: the images the stages work through; a fit learns it from its ``embed images``
            stage, a job without one (an add-on fit) names it here.

    Raises:
        JobRunningError: another process holds the job's lock.
    """
    folder = job_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobRunningError(f"a job is already running for {workspace}") from None
        prog = JobProgress(folder, plan, sys.argv[1:])
        prog.n_images = n_images
        prog.write()
        try:
            yield prog
        except BaseException as exc:
            prog.state, prog.error = "failed", f"{type(exc).__name__}: {exc}"
            prog.write()
            raise
        prog.state = "done"
        prog.write()
        prog.save_profile()


def add_job_option(parser: argparse.ArgumentParser) -> None:
    """Give a command that writes ``--workspace`` the ``--job`` flag (see :func:`optional_job`)."""
    parser.add_argument(
        "--job",
        action="store_true",
        help="run as the workspace's background job: progress, ETA and outcome in WORKSPACE.job/status.json "
        "(what the app starts and shows)",
    )


def optional_job(workspace: str | Path, plan: list[PlanStep], enabled: bool, n_images: int = 0):
    """:func:`job` when ``enabled`` (a command's ``--job``), else a context that yields None."""
    return job(workspace, plan, n_images) if enabled else nullcontext(None)


def is_running(workspace: str | Path) -> bool:
    """Whether a process holds the job lock of ``workspace``."""
    lock_path = job_dir(workspace) / "lock"
    if not lock_path.is_file():
        return False
    with open(lock_path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def read_status(workspace: str | Path) -> dict | None:
    """The job's last status, or None if it never ran; ``state`` is ``stopped`` for a job that
    died without finishing (killed, machine restarted)."""
    try:
        status = json.loads((job_dir(workspace) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    starting = status.get("pid") is None and time.time() - status.get("updated", 0.0) < START_GRACE_S
    if status.get("state") == "running" and not starting and not is_running(workspace):
        status["state"] = "stopped"
    return status


def start(workspace: str | Path, args: list[str]) -> subprocess.Popen | None:
    """Start ``python -m core ARGS`` (which must include ``--job``) detached from this process.

    Returns the process, or None when a job is already running for ``workspace``.
    """
    if is_running(workspace):
        return None
    folder = job_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()  # until the process takes over, the job reads as starting (not as missing or stopped)
    first = {"state": "running", "stage": "starting", "command": args, "pid": None, "started": now, "updated": now}
    (folder / "status.json").write_text(json.dumps({**first, "done": 0, "total": 0, "fraction": 0.0, "eta_s": None, "plan": []}))
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    with open(folder / "log.txt", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "core", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            start_new_session=True,  # its own session: closing the tab or stopping the app leaves it running
        )


def resume(workspace: str | Path) -> subprocess.Popen | None:
    """Start a stopped or failed job again with its own command (finished stages come from the caches)."""
    status = read_status(workspace)
    if status is None or not status.get("command"):
        return None
    return start(workspace, list(status["command"]))
