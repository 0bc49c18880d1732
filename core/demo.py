"""The embedded demo: Open Clip Art drawings in ``assets/demo`` (see ``scripts/build_demo_dataset.py``).

The demo workspace comes with every page's models: the fit, then semantic search and the
tag-neighbourhood models, so a newcomer never meets a "Fit" button.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.progress import ProgressFn, TqdmProgress
from core.workspace import Workspace, is_workspace, open_workspace
from core.workspace_files import workspace_lock


def demo_dataset_path() -> Path:
    """``$PIXCTX_DEMO_DATA`` or the repository's ``assets/demo``."""
    env = os.environ.get("PIXCTX_DEMO_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "assets" / "demo"


# The demo's second workspace: labels kept for this share of each label's training images (seed
# DEMO_SEED), captions for all: the product's case, where the caption models make a difference.
DEMO_SCARCE_FRACTION = 0.1
DEMO_SEED = 0


def demo_workspace_path(label_fraction: float = 1.0) -> Path:
    """``$PIXCTX_DEMO_WORKSPACE`` or ``~/.cache/pixctx/demo-workspace``; with a ``label_fraction``
    below 1, that name with ``-labels<percent>`` appended."""
    env = os.environ.get("PIXCTX_DEMO_WORKSPACE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "pixctx" / "demo-workspace"
    return base if label_fraction >= 1.0 else base.with_name(f"{base.name}-labels{round(100 * label_fraction)}")


def demo_data_root(workspace: str | Path) -> Path | None:
    """The demo dataset's folder when ``workspace`` is one of the demo workspaces (its images are
    read from there even if the workspace was fitted from another checkout), else ``None``."""
    ws = Path(workspace).expanduser().resolve()
    demos = {demo_workspace_path(f).expanduser().resolve() for f in (1.0, DEMO_SCARCE_FRACTION)}
    return demo_dataset_path() if ws in demos else None


def is_demo_ready(path: str | Path | None = None) -> bool:
    """Whether the demo workspace is fitted with its search and tag models."""
    from core.retrieval.semantic import FOLDER as RETRIEVAL
    from core.tags.annotate import FOLDER as TAGS

    ws_path = Path(path).expanduser() if path else demo_workspace_path()
    return is_workspace(ws_path) and all((ws_path / f / "config.json").is_file() for f in (RETRIEVAL, TAGS))


def demo_workspace(
    path: str | Path | None = None,
    *,
    label_fraction: float = 1.0,
    refit: bool = False,
    progress: ProgressFn | None = None,
) -> Workspace:
    """Open the demo workspace, fitting it first if needed (cached features make a resumed fit fast).

    Two app sessions (or an app and the CLI) opening it at once: one fits, the others wait for it.

    Args:
        path: workspace folder (default :func:`demo_workspace_path` for ``label_fraction``).
        label_fraction: keep labels for this share of each label's training images (seed
            :data:`DEMO_SEED`); below 1 the caption models are fitted too.
        refit: fit again even if the workspace exists.
        progress: progress callback.
    """
    from core.config import FitConfig
    from core.pipeline import fit

    ws_path = Path(path).expanduser() if path else demo_workspace_path(label_fraction)
    if refit or not is_demo_ready(ws_path):
        data = demo_dataset_path()
        if not (data / "manifest.csv").is_file():
            raise FileNotFoundError(f"demo dataset not found at {data} (set PIXCTX_DEMO_DATA)")
        with workspace_lock(ws_path, wait=True):
            if refit or not is_workspace(ws_path):
                fit(data, ws_path, FitConfig(label_fraction=label_fraction, seed=DEMO_SEED), progress=progress)
            _fit_page_models(open_workspace(ws_path), progress or TqdmProgress())
    return open_workspace(ws_path, data_root=demo_data_root(ws_path))


def _fit_page_models(ws: Workspace, progress: ProgressFn) -> None:
    """Semantic search and tag-neighbourhood models, where the workspace has none yet."""
    from core.retrieval.semantic import fit_retrieval, has_retrieval
    from core.tags.annotate import fit_tag_models, has_tag_models

    if not has_retrieval(ws):
        fit_retrieval(ws, progress=progress)
    if not has_tag_models(ws) and any(len(t) for t in ws.items["tags"]):
        fit_tag_models(ws, progress=lambda s, d, n: progress(f"tag models ({s})", d, n))
