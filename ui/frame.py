"""The frame every page shares, drawn once by ``app.py``: the workspace picker, the fit form and the
progress of background fits (which run as their own processes: closing a tab does not stop them).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import jobs
from core.demo import DEMO_SCARCE_FRACTION, DEMO_SEED, demo_workspace_path, is_demo_ready
from core.workspace import Workspace, is_workspace
from ui.loaders import load_workspace
from ui.safe_text import md
from ui.widgets import watch_job

WORKSPACE_KEY = "workspace_path"
DEMO_KEY = "demo_labels"
# The two demo workspaces: few labels (where the phrases and captions make a difference: the default),
# and every label. The sidebar switches between them on every page.
DEMO_CHOICES = {
    f"{DEMO_SCARCE_FRACTION:.0%} of the labels (seed {DEMO_SEED}), captions for all": DEMO_SCARCE_FRACTION,
    "all labels": 1.0,
}


def chosen_path() -> Path:
    """The workspace the pages show: the one typed in the sidebar, else the demo."""
    typed = st.session_state.get(WORKSPACE_KEY)
    return Path(typed).expanduser() if typed else demo_workspace_path(demo_fraction())


def demo_fraction() -> float:
    """The share of labels of the demo workspace chosen in the sidebar."""
    return DEMO_CHOICES.get(st.session_state.get(DEMO_KEY, ""), next(iter(DEMO_CHOICES.values())))


def workspace() -> Workspace:
    """The chosen workspace, for a page (the frame has checked that it is fitted)."""
    return load_workspace(chosen_path())


def draw() -> bool:
    """Sidebar (picker, fit form) and, where the chosen workspace is not ready, its job's progress.

    Returns:
        Whether the chosen workspace is ready for the pages.
    """
    _picker()
    _fit_form()
    path = chosen_path()
    demo = not st.session_state.get(WORKSPACE_KEY)
    if (is_demo_ready(path) if demo else is_workspace(path)) and not (demo and jobs.is_running(path)):
        return True
    status = jobs.read_status(path)
    if demo and not jobs.is_running(path):
        state = status["state"] if status else None
        if state == "done" and is_workspace(path):  # finished, yet without its search or tag models
            st.error(f"The demo fit finished without every page's models; its log: {md(jobs.job_dir(path) / 'log.txt')}")
            return False
        if state in (None, "done", "stopped"):  # first run, a deleted demo, or a fit that was killed: (re)start
            jobs.start(path, ["demo", "--workspace", str(path), "--label-fraction", str(demo_fraction()), "--job"])
            status = None
    if status is None and not demo and not jobs.is_running(path):
        st.error(f"Not a fitted workspace: {md(path)}. Type another folder in the sidebar, or fit one there.")
        return False
    st.title("Pixel Context")
    if demo:
        st.info(
            "First run: fitting this demo workspace (Open Clip Art drawings) with every page's models. It runs in "
            "the background: closing this tab does not stop it, and any tab shows its progress."
        )
    watch_job(str(path), key=f"watch_{path}")
    return False


def _picker() -> None:
    with st.sidebar:
        st.subheader("Workspace")
        pending = st.session_state.pop("_workspace_pending", None)
        if pending is not None:  # set by the fit form, below this widget
            st.session_state[WORKSPACE_KEY] = st.session_state["workspace_input"] = pending
        current = st.session_state.get(WORKSPACE_KEY) or ""
        typed = st.text_input("Fitted workspace folder (empty = demo)", value=current, key="workspace_input")
        if typed.strip() != current:
            st.session_state[WORKSPACE_KEY] = typed.strip()
            st.rerun()
        if not current:
            help_text = "the demo fitted with few labels shows what the phrases and captions add"
            st.radio("Demo labels", list(DEMO_CHOICES), key=DEMO_KEY, help=help_text)


def _fit_form() -> None:
    with st.sidebar.expander("Fit a new workspace"):
        data = st.text_input("Dataset (manifest or image folder)", key="fit_data").strip()
        out = st.text_input("Workspace folder", key="fit_out").strip()
        frac = st.slider("Share of training labels kept", 0.05, 1.0, 1.0, 0.05, key="fit_frac")
        st.caption("The fit runs in the background; closing the tab does not stop it.")
        if st.button("Fit", disabled=not (data and out), key="fit_start"):
            data, out = str(Path(data).expanduser().resolve()), str(Path(out).expanduser().resolve())  # the job runs elsewhere
            if not Path(data).expanduser().exists():
                st.error(f"No such dataset: {md(data)}")
            elif jobs.start(out, ["fit", data, "--workspace", out, "--label-fraction", str(frac), "--job"]) is None:
                st.warning(f"A fit is already running for {md(out)}.")
            else:
                st.session_state["_workspace_pending"] = str(Path(out).expanduser())
                st.rerun()
