"""Helpers shared by the pages: cached workspace loading, the workspace picker, progress bars.

Only presentation lives here; every computation is a call into ``core``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.compare import MODEL_TITLES, best_model
from core.demo import DEMO_SCARCE_FRACTION, DEMO_SEED, demo_workspace, demo_workspace_path
from core.explore import Explorer, probability_table
from core.workspace import Prediction, Workspace, is_workspace, open_workspace

MODEL_NAMES = MODEL_TITLES
DEMO_CHOICES = {
    f"{DEMO_SCARCE_FRACTION:.0%} of the labels (seed {DEMO_SEED}), captions for all": DEMO_SCARCE_FRACTION,
    "all labels": 1.0,
}


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


@st.cache_resource(show_spinner=False)
def load_explorer(path: str, mtime: float) -> Explorer:
    """The workspace's precomputed gallery views, shared by all sessions."""
    return Explorer(load_workspace(path, mtime))


@st.cache_resource(show_spinner=False)
def _label_store(path: str, mtime: float, url: str):
    from core.labels.session import open_label_store

    return open_label_store(load_workspace(path, mtime), url)


def label_store(ws: Workspace):
    """The workspace's label store (one engine per workspace and database, shared by sessions)."""
    from core.labels.session import label_db_url

    return _label_store(*_stamp(ws.path), str(label_db_url(ws)))


@st.cache_resource(show_spinner=False)
def _retrieval(path: str, mtime: float, fitted: float):
    from core.retrieval.semantic import open_retrieval

    return open_retrieval(load_workspace(path, mtime))


def retrieval_for(ws: Workspace):
    """The workspace's semantic search (reloaded when it is refitted)."""
    from core.retrieval.semantic import FOLDER

    return _retrieval(*_stamp(ws.path), (ws.path / FOLDER / "config.json").stat().st_mtime)


@st.cache_resource(show_spinner=False)
def _tag_models(path: str, mtime: float, fitted: float, setting: tuple[int, int]):
    from core.tags.annotate import open_tag_models

    return open_tag_models(load_workspace(path, mtime), setting)


def tag_models_for(ws: Workspace, setting: tuple[int, int]):
    """The workspace's tag-neighbourhood models of one (m, M) setting."""
    from core.tags.annotate import FOLDER

    return _tag_models(*_stamp(ws.path), (ws.path / FOLDER / "config.json").stat().st_mtime, setting)


def _stamp(path: Path) -> tuple[str, float]:
    return str(path), (path / "manifest.json").stat().st_mtime


def _open(path: Path) -> Workspace:
    return load_workspace(*_stamp(path))


def explorer_for(ws: Workspace) -> Explorer:
    return load_explorer(*_stamp(ws.path))


@st.cache_data(max_entries=64, show_spinner="Running the pipeline on the image…")
def predict_image(ws_path: str, mtime: float, data: bytes, name: str) -> Prediction:
    """The whole pipeline on one uploaded image (cached by content); ``error`` set if unusable."""
    return load_workspace(ws_path, mtime).predict([data], names=[name], top=10_000)[0]


def predict_upload(ws: Workspace, data: bytes, name: str) -> Prediction:
    return predict_image(*_stamp(ws.path), data, name)


def current_workspace() -> Workspace | None:
    """The workspace chosen in the sidebar (the demo by default); fits the demo if needed."""
    choice = st.session_state.get("workspace_path")
    if choice:
        path = Path(choice)
        if is_workspace(path):
            return _open(path)
        st.error(f"Not a fitted workspace: {path}")
        return None
    fraction = DEMO_CHOICES[st.session_state.get("demo_labels", next(iter(DEMO_CHOICES)))]
    path = demo_workspace_path(fraction)
    if not is_workspace(path):
        st.info("First run: fitting the demo workspace (Open Clip Art, about 2,500 drawings). This takes a few minutes once.")
        with st.status("Fitting the demo workspace…", expanded=True) as status:
            demo_workspace(path, label_fraction=fraction, progress=StreamlitProgress())
            status.update(label="Demo workspace ready", state="complete", expanded=False)
    return _open(path)


def page_workspace() -> Workspace:
    """The sidebar picker and the chosen workspace; stops the page if there is none."""
    workspace_sidebar()
    ws = current_workspace()
    if ws is None:
        st.stop()
    return ws


def offer_fit(what: str, seconds: str, button: str, key: str, fit_fn) -> None:
    """Say that ``what`` is not fitted yet, offer a button that fits it (progress in the page), and stop."""
    st.info(f"This workspace has no {what} yet. Fitting reuses the stored visual features ({seconds} on the demo).")
    if st.button(button, key=key, type="primary"):
        with st.status(f"Fitting {what}…", expanded=True) as status:
            fit_fn(progress=StreamlitProgress())
            status.update(label=f"{what[0].upper()}{what[1:]} ready", state="complete")
        st.rerun()
    st.stop()


def workspace_sidebar() -> None:
    """Sidebar: which workspace the pages show."""
    with st.sidebar:
        st.subheader("Workspace")
        current = st.session_state.get("workspace_path") or ""
        typed = st.text_input("Fitted workspace folder (empty = demo)", value=current, key="workspace_input")
        if typed != current:
            st.session_state["workspace_path"] = typed.strip()
            st.rerun()
        if not current:
            st.radio(
                "Demo labels",
                list(DEMO_CHOICES),
                key="demo_labels",
                help="the demo fitted with few labels shows what captions add",
            )


def _verdict(pred_label: str, truth: list[str] | None) -> str:
    if not truth:
        return pred_label
    return f":green[✓ {pred_label}]" if pred_label in truth else f":red[✗ {pred_label}]"


def render_detail(
    ex: Explorer,
    pred: Prediction,
    image: str | bytes,
    truth: list[str] | None,
    neighbours: list[tuple[int, float]],
    key: str,
) -> None:
    """One image: its phrases, both models' probabilities side by side, zero-shot, neighbours.

    Clicking a neighbour opens it in Explore (through the ``item`` query parameter).
    """
    import plotly.express as px

    top, info = st.columns([1, 2])
    with top:
        st.image(image, width="stretch")
    with info:
        st.markdown(f"**{pred.image}**")
        if truth is not None:
            st.markdown("True label: " + (", ".join(f"`{t}`" for t in truth) or "_none_"))
        best = best_model(ex.ws).name
        if pred.rankings.get(best):
            suggestion = pred.rankings[best][0][0]
            st.markdown(f"**Suggested label**: {suggestion} ({MODEL_NAMES[best]}, best on held-out labelled images)")
        shown = ("baseline", "multimodal", "baseline_captions", "multimodal_captions", "text_only", "zeroshot")
        st.markdown(
            "  \n".join(
                f"{MODEL_NAMES[m]}: {_verdict(pred.rankings[m][0][0], truth)} ({pred.rankings[m][0][1]:.2f})"
                for m in shown
                if pred.rankings.get(m)
            )
        )
    st.markdown("**Generated phrases** (the top 3 make the text vector)")
    phrases = pd.DataFrame(pred.phrases[:10], columns=["phrase", "score"])
    st.dataframe(
        phrases,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(phrases), 250),
        column_config={"score": st.column_config.ProgressColumn("cosine", min_value=0.0, max_value=1.0, format="%.2f")},
    )
    table = probability_table(pred)
    fig = px.bar(
        table,
        x="probability",
        y="label",
        color="model",
        barmode="group",
        orientation="h",
        height=80 + 28 * table["label"].nunique(),
        color_discrete_map={"baseline": "#94a3b8", "multimodal": "#2563eb"},
        range_x=[0, 1],
    )
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(autorange="reversed", title=None), legend_title=None)
    st.plotly_chart(fig, width="stretch", key=f"{key}_bars")
    st.markdown("**Zero-shot** top labels: " + ", ".join(f"{n} ({p:.2f})" for n, p in pred.zeroshot[:3]))
    if neighbours:
        st.markdown("**Nearest images** (visual cosine)")
        cols = st.columns(4)
        items = ex.ws.items
        for n, (row, sim) in enumerate(neighbours[:8]):
            with cols[n % 4]:
                st.image(items.at[row, "path"], width="stretch")
                labs = ", ".join(items.at[row, "labels"]) or "—"
                if st.button(f"{labs} · {sim:.2f}", key=f"{key}_nb_{row}", width="stretch"):
                    open_item(str(items.at[row, "item"]))


def open_item(item: str) -> None:
    """Show ``item`` in Explore's detail view (shareable: the item is in the URL)."""
    st.switch_page("pages/explore.py", query_params={"item": item})
