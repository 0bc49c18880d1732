"""Workspace folders on disk: what is in one, how it is written, locked, checked and replaced.

Every write to a workspace goes through this module (a fit through :func:`staged_workspace`,
a retrain through :func:`commit_retrain`, an add-on model through :func:`addon_folder`, a
cache or an attached file through :func:`write_files`), so the rules below hold everywhere:

* A folder is replaced only if the product made it: a workspace (``manifest.json`` with this
  product's ``format`` key), or an empty folder. Anything else -- a user's documents, the
  dataset itself, a folder that contains the dataset -- is refused with a message naming it.
* One writer at a time: an exclusive lock file ``WS.lock`` beside the workspace, holding the
  writer's PID. The OS releases the lock when its process dies, so a stale lock file from a
  killed fit is simply taken over.
* A fit writes into ``WS.partial`` (marked with ``.pixctx-partial``) and swaps it in at the
  end; a failed fit removes its staging folder, and a staging folder left by a killed fit is
  removed by the next one (only if the product made it).
* Whatever a fit does not produce is carried over to the new workspace: the label history
  (``labels.sqlite`` and its WAL files), a user's own files, and the add-on models
  (``retrieval/``, ``tags/``) while they still describe the same images with the same
  backbone; attached predictions (``predictions/``) always. Caches of the old fit (``oof/``) are dropped.
* A retrain writes its classifiers into ``WS/classifiers.new`` (:func:`classifiers_staging`) and
  swaps them in (:func:`commit_retrain`); what a killed retrain left is cleaned by the next writer.
* An add-on model (``retrieval/``, ``tags/``) is written whole into ``WS/NAME.partial`` under the
  lock and swapped in place of ``WS/NAME`` at the end: a failed or killed add-on fit leaves the
  previous models intact (the next writer removes its staging folder). Files in ``oof/`` and
  ``predictions/`` are written to ``FILE.partial`` and renamed over ``FILE``, under the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import save_file

from core.jsonio import strict_json

FORMAT = 1  # the layout version this code reads and writes (``manifest.json``'s ``format``)
MANIFEST = "manifest.json"
FIT_FILES = (
    MANIFEST,
    "items.parquet",
    "issues.json",
    "arrays.safetensors",
    "predictions.safetensors",
    "generator",
    "classifiers",
    "zeroshot.safetensors",
)
#: caches of one fit (review queues, the neighbour index of large workspaces): dropped when it is replaced
DERIVED_FILES = ("oof", "index", "oof_multimodal.safetensors")
#: the derived files that depend on the visual features only (a retrain keeps them: it changes no feature)
FEATURE_CACHES = ("index",)
ROW_ADDONS = ("retrieval", "tags")  # models over the workspace's rows: kept while rows and backbone are the same
FILE_FOLDERS = ("oof", "index", "predictions")  # folders of files written one at a time (caches, attached predictions)
STAGING_MARK = ".pixctx-partial"
_SCRATCH = (".partial", ".replaced", ".retrain")  # suffixes of staging and retired entries: never carried over
#: a retrain's commit mark: present once every new file is staged (``*.retrain``, ``classifiers.new``);
#: :func:`recover` finishes a retrain that has one and drops one that has not
RETRAIN_MARK = "retrain.commit"
#: the files a retrain replaces, in the order it installs them (the manifest last: readers reload on it)
_RETRAINED_FILES = ("predictions.safetensors", "items.parquet")


class WorkspaceError(ValueError):
    """A workspace that cannot be read or written (the message names the file and what to do)."""


class WorkspaceBusyError(RuntimeError):
    """Another process is writing the workspace."""


def refit_hint(path: Path) -> str:
    return f"fit it again (`python -m core fit DATA --workspace {path}`)"


def read_manifest(path: str | Path) -> dict:
    """The checked ``manifest.json`` of a workspace folder.

    Raises:
        FileNotFoundError: no ``manifest.json`` (not a fitted workspace).
        WorkspaceError: unreadable, or written by another format version.
    """
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"not a fitted workspace (no manifest.json): {path}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkspaceError(f"{file} is damaged ({exc}); {refit_hint(path)}") from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise WorkspaceError(f"{file} is not a Pixel Context workspace manifest (no 'format' key); {refit_hint(path)}")
    if manifest["format"] != FORMAT:
        raise WorkspaceError(
            f"{file} has format {manifest['format']!r}, this version reads format {FORMAT}; "
            f"{refit_hint(path)} or open it with the version that wrote it"
        )
    for key in ("config", "labels", "dataset", "metrics"):
        if key not in manifest:
            raise WorkspaceError(f"{file} lacks the {key!r} entry; {refit_hint(path)}")
    return manifest


def is_product_workspace(path: str | Path) -> bool:
    """Whether ``path`` holds a workspace this product wrote (any format version, even a damaged one)."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and "format" in manifest


# --- locking -------------------------------------------------------------------------------
_held = threading.local()


def lock_path(workspace: Path) -> Path:
    return workspace.with_name(workspace.name + ".lock")


@contextlib.contextmanager
def workspace_lock(workspace: str | Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the workspace's exclusive write lock (re-entrant within one thread).

    Args:
        workspace: the workspace folder (the lock file is ``WS.lock`` beside it).
        wait: block until the lock is free instead of refusing.

    Raises:
        WorkspaceBusyError: another process (or thread) holds it and ``wait`` is false.
    """
    import fcntl  # POSIX: reading a workspace works anywhere, writing one needs flock

    ws = Path(workspace).expanduser().resolve()
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    if ws in held:
        yield
        return
    ws.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(ws)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise WorkspaceBusyError(
                f"workspace {ws} is being written by another fit or retrain (process {owner}); "
                f"wait for it to finish, or choose another --workspace"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        held.add(ws)
        try:
            recover(ws)
            yield
        finally:
            held.discard(ws)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock; the (empty) lock file stays, harmless


# --- staging and replacing ---------------------------------------------------------------------
def staging_path(workspace: Path) -> Path:
    return workspace.with_name(workspace.name + ".partial")


def _retired_path(workspace: Path) -> Path:
    return workspace.with_name(workspace.name + ".replaced")


def _is_product_staging(path: Path) -> bool:
    """A staging folder this product made (marked, or holding nothing but fit outputs)."""
    return (path / STAGING_MARK).is_file() or all(p.name in FIT_FILES for p in path.iterdir())


def check_target(workspace: Path, protect: Iterable[Path] = ()) -> None:
    """Refuse a workspace folder that a fit must not replace.

    Args:
        workspace: the folder a fit will write (resolved).
        protect: folders that must survive (the dataset's folder): the workspace may be neither
            one of them nor contain one.

    Raises:
        WorkspaceError: the folder is a file, a protected folder or contains one, or an existing
            folder that is neither empty nor a workspace.
    """
    for p in protect:
        p = p.resolve()
        if workspace == p or workspace in p.parents:
            raise WorkspaceError(
                f"--workspace {workspace} is (or contains) the dataset folder {p}: a fit replaces its workspace "
                "folder, so choose a new folder outside the dataset"
            )
    if workspace.is_symlink() or (workspace.exists() and not workspace.is_dir()):
        raise WorkspaceError(f"--workspace {workspace} exists and is not a folder; choose a new folder")
    if workspace.is_dir() and any(workspace.iterdir()) and not is_product_workspace(workspace):
        raise WorkspaceError(
            f"--workspace {workspace} already exists and is not a Pixel Context workspace (no manifest.json with a "
            "'format' key): a fit would replace it, so nothing was written; choose a new or empty folder"
        )
    retired = _retired_path(workspace)
    if retired.exists() and not is_product_workspace(retired):
        raise WorkspaceError(f"{retired} exists and was not made by a fit (a fit uses that name); move it away and fit again")


def _discard_staging(tmp: Path) -> None:
    if tmp.is_dir() and _is_product_staging(tmp):
        shutil.rmtree(tmp)


@contextlib.contextmanager
def staged_workspace(workspace: str | Path, *, protect: Iterable[Path] = ()) -> Iterator[Path]:
    """Lock ``workspace``, check it may be replaced, and yield an empty staging folder to write.

    When the block ends normally the staging folder (complete, ``manifest.json`` written last)
    replaces the workspace, with the old one's labels and add-ons carried over
    (:func:`swap_in`); when it raises, the staging folder is removed and the old workspace is
    untouched.

    Raises:
        WorkspaceError: see :func:`check_target`; or a ``WS.partial`` the product did not make.
        WorkspaceBusyError: another fit or retrain holds the lock.
    """
    ws = Path(workspace).expanduser().resolve()
    with workspace_lock(ws):
        check_target(ws, protect)
        tmp = staging_path(ws)
        if tmp.exists():
            if not (tmp.is_dir() and _is_product_staging(tmp)):
                raise WorkspaceError(f"{tmp} exists and was not made by a fit; move it away and fit again")
            shutil.rmtree(tmp)  # left by a killed fit (we hold the lock: nobody is writing it)
        tmp.mkdir(parents=True)
        (tmp / STAGING_MARK).write_text(f"{os.getpid()}\n")
        try:
            yield tmp
            if not (tmp / MANIFEST).is_file():
                raise WorkspaceError(f"internal error: the fit wrote no {MANIFEST} into {tmp}")
            swap_in(tmp, ws)
        except BaseException:
            _discard_staging(tmp)
            raise


def swap_in(tmp: Path, ws: Path) -> None:
    """Replace ``ws`` by the complete staging folder ``tmp``, carrying over what the fit did not make.

    Crash-safe with :func:`recover`: the old workspace is first renamed to ``WS.replaced``, the
    new one renamed into place, the carried entries moved (renames keep open label databases
    valid), and only then the rest of the old one removed.
    """
    (tmp / STAGING_MARK).unlink()
    old = _retired_path(ws)
    if ws.exists():
        if old.exists() and is_product_workspace(old):
            _remove_workspace(old)  # left half-removed by a crash (recover() already carried what it held)
        if any(ws.iterdir()):
            ws.rename(old)
        else:
            ws.rmdir()
    tmp.rename(ws)
    recover(ws)


def recover(ws: Path) -> None:
    """Finish a replacement (of the workspace, or of an add-on folder) interrupted by a crash
    (called under the lock)."""
    _recover_workspace(ws)
    if is_product_workspace(ws):
        for name in ROW_ADDONS:
            _recover_addon(ws / name)
        _recover_classifiers(ws)


def _recover_classifiers(ws: Path) -> None:
    """Finish a killed retrain that had committed (:data:`RETRAIN_MARK`); otherwise remove what it
    left: its staged files, or the old classifiers moved aside (put back if the new ones never got
    into place)."""
    if (ws / RETRAIN_MARK).is_file():
        _install_retrain(ws)
        return
    new, old = ws / "classifiers.new", ws / "classifiers.old"
    for name in (*_RETRAINED_FILES, MANIFEST):
        _staged(ws, name).unlink(missing_ok=True)
    if new.is_dir():
        shutil.rmtree(new)
    if old.is_dir():
        if (ws / "classifiers").exists():
            shutil.rmtree(old)
        else:
            old.rename(ws / "classifiers")


def _recover_workspace(ws: Path) -> None:
    old = _retired_path(ws)
    if not old.is_dir() or not is_product_workspace(old):
        return
    if not ws.exists():  # crashed between the two renames: put the old workspace back
        old.rename(ws)
        return
    keep_rows = _same_rows(old, ws)
    for entry in sorted(old.iterdir()):
        name = entry.name
        if name in FIT_FILES or name in DERIVED_FILES or name.startswith("classifiers.") or name.endswith(_SCRATCH):
            continue
        if name in ROW_ADDONS and not keep_rows:
            continue
        if not (ws / name).exists():
            entry.rename(ws / name)
    _remove_workspace(old)


def _remove_workspace(path: Path) -> None:
    """Delete a retired workspace, ``manifest.json`` last (so a crash midway leaves it recognisable)."""
    for entry in path.iterdir():
        if entry.name != MANIFEST:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (path / MANIFEST).unlink(missing_ok=True)
    path.rmdir()


def _same_rows(a: Path, b: Path) -> bool:
    """Whether two workspaces hold the same images in the same order, embedded by the same backbone."""
    try:
        ca, cb = (json.loads((p / MANIFEST).read_text())["config"] for p in (a, b))
        if (ca.get("backbone"), ca.get("backbone_weights")) != (cb.get("backbone"), cb.get("backbone_weights")):
            return False
        ia, ib = (pd.read_parquet(p / "items.parquet", columns=["item"])["item"] for p in (a, b))
    except (OSError, KeyError, ValueError, json.JSONDecodeError):
        return False
    return len(ia) == len(ib) and bool((ia.to_numpy() == ib.to_numpy()).all())


# --- writing ------------------------------------------------------------------------------------
def write_fit(
    folder: Path,
    manifest: dict,
    items: pd.DataFrame,
    issues: list,
    arrays: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
) -> None:
    """Write a fit's files into a staging folder (``manifest.json`` last: its presence marks a complete fit)."""
    items.to_parquet(folder / "items.parquet", index=False)
    (folder / "issues.json").write_text(
        json.dumps([{"file": i.file, "row": i.row, "image": i.image, "reason": i.reason} for i in issues], indent=1)
    )
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / "arrays.safetensors"))
    save_predictions(folder / "predictions.safetensors", predictions)
    (folder / MANIFEST).write_text(strict_json({"format": FORMAT, **manifest}, default=str))


def save_predictions(path: Path, predictions: dict[str, np.ndarray]) -> None:
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in predictions.items()}, str(path))


def _replace_file(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        write(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def classifiers_staging(ws: Path) -> Path:
    """The empty folder ``WS/classifiers.new`` a retrain writes its classifiers into (the caller
    holds :func:`workspace_lock`; :func:`commit_retrain` installs it, :func:`recover` removes one
    left by a killed retrain)."""
    new = ws / "classifiers.new"
    if new.exists():
        shutil.rmtree(new)
    return new


def commit_retrain(ws: Path, classifiers: Path, predictions: dict[str, np.ndarray], items: pd.DataFrame, manifest: dict) -> None:
    """Install retrained classifiers (written to ``classifiers``, see :func:`classifiers_staging`)
    and the new predictions, items and manifest, all or nothing: every new file is staged first
    (``*.retrain``), then a commit mark is written, then they are put in place, ``manifest.json``
    last (its mtime tells readers to reload). A crash before the mark leaves the old workspace
    (:func:`recover` drops the staged files); after it, :func:`recover` finishes the install. The
    caller holds :func:`workspace_lock`."""
    if classifiers != ws / "classifiers.new":
        classifiers.rename(ws / "classifiers.new")
    save_predictions(_staged(ws, "predictions.safetensors"), predictions)
    items.to_parquet(_staged(ws, "items.parquet"), index=False)
    _staged(ws, MANIFEST).write_text(strict_json(manifest, default=str))
    _replace_file(ws / RETRAIN_MARK, lambda p: p.write_text("staged\n"))
    _install_retrain(ws)


def _staged(ws: Path, name: str) -> Path:
    return ws / (name + ".retrain")


def _install_retrain(ws: Path) -> None:
    """Put a committed retrain's staged files in place; every step can be repeated after a crash."""
    current, new, old = ws / "classifiers", ws / "classifiers.new", ws / "classifiers.old"
    if new.is_dir():
        if current.exists():
            if old.exists():
                shutil.rmtree(old)
            current.rename(old)
        new.rename(current)
    for name in _RETRAINED_FILES:
        if _staged(ws, name).exists():
            _staged(ws, name).replace(ws / name)
    for name in set(DERIVED_FILES) - set(FEATURE_CACHES):  # a file (old workspaces) or a folder
        shutil.rmtree(ws / name) if (ws / name).is_dir() else (ws / name).unlink(missing_ok=True)
    if _staged(ws, MANIFEST).exists():
        _staged(ws, MANIFEST).replace(ws / MANIFEST)
    if old.exists():
        shutil.rmtree(old)
    (ws / RETRAIN_MARK).unlink(missing_ok=True)


# --- add-on models and cached files ---------------------------------------------------------------
def _checked_workspace(workspace: str | Path) -> Path:
    ws = Path(workspace).expanduser().resolve()
    if not is_product_workspace(ws):
        raise WorkspaceError(f"{ws} is not a fitted Pixel Context workspace; {refit_hint(ws)}")
    return ws


@contextlib.contextmanager
def addon_folder(workspace: str | Path, name: str) -> Iterator[Path]:
    """Lock ``workspace`` and yield an empty staging folder for the add-on model ``name``.

    When the block ends normally the staging folder replaces ``WS/NAME`` (the old one is removed
    only once the new one is in place); when it raises, the staging folder is removed and the
    previous add-on stays as it was.

    Args:
        workspace: a fitted workspace folder.
        name: one of :data:`ROW_ADDONS`.

    Raises:
        ValueError: an unknown add-on name.
        WorkspaceError: not a fitted workspace.
        WorkspaceBusyError: another process holds the lock (a fit, a retrain, another add-on fit).
    """
    if name not in ROW_ADDONS:
        raise ValueError(f"unknown add-on folder {name!r}; one of {ROW_ADDONS}")
    ws = _checked_workspace(workspace)
    with workspace_lock(ws):
        target = ws / name
        tmp = staging_path(target)
        if tmp.exists():  # recover() removed a marked one: this one is not the product's
            raise WorkspaceError(f"{tmp} exists and was not made by this product; move it away and try again")
        tmp.mkdir()
        (tmp / STAGING_MARK).write_text(f"{os.getpid()}\n")
        try:
            yield tmp
            (tmp / STAGING_MARK).unlink()
            old = _retired_path(target)
            if old.exists():
                shutil.rmtree(old)
            if target.exists():
                target.rename(old)
            tmp.rename(target)
            if old.exists():
                shutil.rmtree(old)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp)
            raise


def _recover_addon(target: Path) -> None:
    """Remove the staging folder of a killed add-on fit; finish a swap interrupted between its renames."""
    tmp, old = staging_path(target), _retired_path(target)
    if (tmp / STAGING_MARK).is_file():
        shutil.rmtree(tmp)
    if old.is_dir():
        if target.exists():
            shutil.rmtree(old)
        else:
            old.rename(target)


def write_files(workspace: str | Path, folder: str, writers: dict[str, Callable[[Path], None]], *, wait: bool = False) -> None:
    """Write files into ``WS/folder`` under the lock, each to ``NAME.partial`` then renamed over ``NAME``.

    Args:
        workspace: a fitted workspace folder.
        folder: one of :data:`FILE_FOLDERS`.
        writers: file name -> a function writing that file's content to the path it is given.
        wait: wait for another writer instead of refusing.

    Raises:
        ValueError: an unknown folder or a file name that is not a plain name.
        WorkspaceError: not a fitted workspace.
        WorkspaceBusyError: another process holds the lock and ``wait`` is false.
    """
    if folder not in FILE_FOLDERS:
        raise ValueError(f"unknown workspace folder {folder!r}; one of {FILE_FOLDERS}")
    bad = [n for n in writers if Path(n).name != n or n.startswith(".") or n.endswith(".partial")]
    if bad:
        raise ValueError(f"not plain file names: {bad}")
    ws = _checked_workspace(workspace)
    with workspace_lock(ws, wait=wait):
        (ws / folder).mkdir(exist_ok=True)
        for name, write in writers.items():
            _replace_file(ws / folder / name, write)


def cache_arrays(workspace: str | Path, folder: str, name: str, arrays: dict[str, np.ndarray]) -> bool:
    """Store a cache file ``WS/folder/name`` (safetensors) atomically, unless another process is
    writing the workspace or the folder cannot be written (read-only, full): a cache is never worth
    waiting or failing for.

    Returns:
        Whether it was written.

    Raises:
        ValueError, WorkspaceError: a bad folder or name, or not a workspace (see :func:`write_files`).
    """
    try:
        write_files(workspace, folder, {name: lambda p: save_file(arrays, str(p))})
    except (WorkspaceBusyError, OSError):
        return False
    return True
