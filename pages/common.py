"""Helpers shared by the pages: cached workspace loading, the workspace picker, progress bars.

Only presentation lives here; every computation is a call into ``core``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.demo import demo_workspace, demo_workspace_path
from core.workspace import Workspace, is_workspace, open_workspace

MODEL_NAMES = {"baseline": "Baseline (visual)", "multimodal": "Multimodal", "text_only": "Text only", "zeroshot": "Zero-shot"}


class StreamlitProgress:
    """A ``core`` progress callback drawing one Streamlit progress bar per stage."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = st.progress(0.0, text=stage)
            self._bars[stage] = bar
        frac = done / total if total else 0.0
        bar.progress(min(frac, 1.0), text=f"{stage}: {done}/{total}" if total else stage)  # type: ignore[attr-defined]


@st.cache_resource(show_spinner=False)
def load_workspace(path: str, mtime: float) -> Workspace:
    """One Workspace per folder and fit (``mtime`` of its manifest), shared by all sessions."""
    return open_workspace(path)


def _open(path: Path) -> Workspace:
    return load_workspace(str(path), (path / "manifest.json").stat().st_mtime)


def current_workspace() -> Workspace | None:
    """The workspace chosen in the sidebar (the demo by default); fits the demo if needed."""
    choice = st.session_state.get("workspace_path")
    if choice:
        path = Path(choice)
        if is_workspace(path):
            return _open(path)
        st.error(f"Not a fitted workspace: {path}")
        return None
    path = demo_workspace_path()
    if not is_workspace(path):
        st.info("First run: fitting the demo workspace (Open Clip Art, about 2,500 drawings). This takes a few minutes once.")
        with st.status("Fitting the demo workspace…", expanded=True) as status:
            demo_workspace(path, progress=StreamlitProgress())
            status.update(label="Demo workspace ready", state="complete", expanded=False)
    return _open(path)


def workspace_sidebar() -> None:
    """Sidebar: which workspace the pages show."""
    with st.sidebar:
        st.subheader("Workspace")
        current = st.session_state.get("workspace_path") or ""
        typed = st.text_input("Fitted workspace folder (empty = demo)", value=current, key="workspace_input")
        if typed != current:
            st.session_state["workspace_path"] = typed.strip()
            st.rerun()
