"""The embedded demo: Open Clip Art drawings in ``assets/demo`` (see ``scripts/build_demo_dataset.py``)."""

from __future__ import annotations

import os
from pathlib import Path

from core.progress import ProgressFn
from core.workspace import Workspace, is_workspace, open_workspace
from core.workspace_files import workspace_lock


def demo_dataset_path() -> Path:
    """``$PIXCTX_DEMO_DATA`` or the repository's ``assets/demo``."""
    env = os.environ.get("PIXCTX_DEMO_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "assets" / "demo"


def demo_workspace_path() -> Path:
    """``$PIXCTX_DEMO_WORKSPACE`` or ``~/.cache/pixctx/demo-workspace``."""
    env = os.environ.get("PIXCTX_DEMO_WORKSPACE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pixctx" / "demo-workspace"


def demo_workspace(path: str | Path | None = None, *, refit: bool = False, progress: ProgressFn | None = None) -> Workspace:
    """Open the demo workspace, fitting it first if needed (cached features make a resumed fit fast).

    Two app sessions (or an app and the CLI) opening it at once: one fits, the others wait for it.
    """
    from core.config import FitConfig
    from core.pipeline import fit

    ws_path = Path(path).expanduser() if path else demo_workspace_path()
    if refit or not is_workspace(ws_path):
        data = demo_dataset_path()
        if not (data / "manifest.csv").is_file():
            raise FileNotFoundError(f"demo dataset not found at {data} (set PIXCTX_DEMO_DATA)")
        with workspace_lock(ws_path, wait=True):
            if refit or not is_workspace(ws_path):
                return fit(data, ws_path, FitConfig(), progress=progress)
    return open_workspace(ws_path)
