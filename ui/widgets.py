"""Widgets the pages share: one image's detail, image tiles, progress of in-page and background work."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import pandas as pd
import streamlit as st

from core import jobs
from core.compare import MODEL_TITLES, best_model
from core.explore import Explorer, probability_table
from core.workspace import Prediction, Workspace
from ui.safe_text import md, md_join, plotly_text

T = TypeVar("T")
MODEL_NAMES = MODEL_TITLES


METHOD_NAMES = {  # semantic search's evaluated methods (core.retrieval.semantic.METHODS)
    "random": "Random order",
    "visual_baseline": "Raw backbone features",
    "semantic_v": "Semantic embedding (V), image query",
    "semantic_vt_query_v": "Semantic embedding (V+T), image query",
    "semantic_vt_query_vt": "Semantic embedding (V+T), image + text query",
}


def model_name(key: str) -> str:
    """A model's or method's name for people (``semantic_vt_query_v`` -> ``Semantic embedding (V+T), image query``)."""
    text = key.replace("_", " ")
    return MODEL_NAMES.get(key) or METHOD_NAMES.get(key) or text[:1].upper() + text[1:]


UNDEFINED = "—"  # a score that is undefined: no test image of a known label, no typed label matched


def score_text(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted by ``spec``, or :data:`UNDEFINED` when it is None or NaN."""
    return UNDEFINED if value is None or not math.isfinite(value) else format(value, spec)


def metrics_table(metrics: dict[str, dict[str, float]]) -> pd.io.formats.style.Styler:
    """Per-model metrics (:attr:`core.workspace.Workspace.metrics`) as a table for people: one row
    per model, three decimals, :data:`UNDEFINED` where a metric is undefined."""
    return pd.DataFrame(metrics).T.rename(index=model_name).style.format("{:.3f}", na_rep=UNDEFINED)


class StreamlitProgress:
    """A ``core`` progress callback drawing one Streamlit progress bar per stage (work done in the
    page); a stage's bar goes away once the stage is done."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = st.progress(0.0, text=stage)
            self._bars[stage] = bar
        if total and done >= total:
            bar.empty()  # type: ignore[attr-defined]
            return
        frac = done / total if total else 0.0
        bar.progress(min(frac, 1.0), text=f"{stage}: {done}/{total}" if total else stage)  # type: ignore[attr-defined]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def job_status(status: dict | None, key: str) -> bool:
    """One background job: an overall progress bar with the current stage and the measured ETA.

    Returns:
        Whether the user asked to resume a stopped or failed job.
    """
    if status is None:
        st.progress(0.0, text="Starting…")
        return False
    state = status["state"]
    stage = status.get("stage", "")
    count = f" {status['done']:,}/{status['total']:,}" if status.get("total") else ""
    end = time.time() if state == "running" else status.get("updated", time.time())
    elapsed = _duration(end - status.get("started", time.time()))
    if state == "running":
        eta = status.get("eta_s")
        left = f" · about {_duration(eta)} left (measured)" if eta is not None else " · measuring speed…"
        st.progress(status["fraction"], text=f"{status['fraction']:.0%} overall · {stage}{count}{left}")
        quiet = time.time() - status.get("updated", time.time())
        note = f" · last report {_duration(quiet)} ago (this stage reports rarely)" if quiet > 30 else ""
        plan = f"Stages: {' → '.join(status['plan'])} · " if status.get("plan") else ""
        st.caption(f"{plan}running for {elapsed}{note}")
        return False
    if state == "done":
        st.progress(1.0, text=f"Done in {elapsed}")
        return False
    if state == "failed":
        st.error(f"The fit failed at “{md(stage)}”: {md(status.get('error', ''))}")
    else:
        st.warning(f"The fit stopped at “{stage}” ({status['fraction']:.0%}) without finishing.")
    return st.button("Resume (finished stages come from the caches)", key=f"{key}_resume", type="primary")


@st.fragment(run_every=2.0)
def watch_job(path: str, key: str) -> None:
    """The progress of the job that writes workspace ``path``, re-read every 2 s; the whole app reruns
    when it has finished (the page then shows what it made)."""
    status = jobs.read_status(path)
    if status is not None and status["state"] == "done" and not jobs.is_running(path):
        st.rerun(scope="app")
    if job_status(status, key=key):
        jobs.resume(path)
        st.rerun(scope="app")


def offer_job(ws: Workspace, what: str, button: str, key: str, command: list[str]) -> None:
    """Say that the workspace has no ``what`` yet and stop the page: with a button that starts
    ``python -m core COMMAND --workspace WS --job`` in the background, or the progress of that job
    while it runs (closing the tab does not stop it; every tab shows the same job).

    One job at a time writes a workspace: while another one runs (a refit, the other add-on), the
    page says so and starts nothing.
    """
    path = str(ws.path)
    status = jobs.read_status(path)
    state = status["state"] if status else None
    ours = status is not None and status.get("command", [])[: len(command)] == command
    if ours and state != "done":  # running, or stopped / failed: its progress and a resume button
        st.info(f"Fitting {what} in the background: closing this tab does not stop it, and every tab shows its progress.")
        watch_job(path, key=f"{key}_job")
        st.stop()
    if state == "running":
        other = md(" ".join(status.get("command", [])[:2]))
        st.info(f"Another job is writing this workspace ({other}); {what} can be fitted when it ends.")
        watch_job(path, key=f"{key}_other")
        st.stop()
    st.info(f"This workspace has no {what} yet. Fitting reuses the stored visual features and runs in the background.")
    if st.button(button, key=key, type="primary"):
        jobs.start(path, [*command, "--workspace", path, "--job"])  # None: another tab just started it
        st.rerun()
    st.stop()


def _verdict(pred_label: str, truth: list[str] | None) -> str:
    shown = md(pred_label)
    if not truth:
        return shown
    return f":green[✓ {shown}]" if pred_label in truth else f":red[✗ {shown}]"


def grid(things: Iterable[T], per_row: int) -> Iterator[tuple[T, object]]:
    """``(thing, column)`` pairs laid out row by row (``with column:`` draws in it): every row starts
    level, however tall the images of the row before."""
    row: list = []
    for thing in things:
        row.append(thing)
        if len(row) == per_row:
            yield from zip(row, st.columns(per_row), strict=False)
            row = []
    if row:
        yield from zip(row, st.columns(per_row), strict=False)


def image(source, caption: str | None = None) -> None:
    """An image at its own size (never upscaled: the demo's 128-px drawings stay sharp), shrunk to fit;
    a file that has gone missing since the fit is named instead of failing the page."""
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        st.caption(f"(image file missing: {md(Path(source).name)})")
        return
    st.image(source, caption=caption)


def wrappable(text: str) -> str:
    """``text`` that may break after a ``/`` or ``_`` (``signs_and_`` ``symbols``) rather than mid-word in a
    narrow tile."""
    return text.replace("/", "/\u200b").replace("_", "_\u200b")


def image_tile(ws, row: int, key: str, label: str, help: str | None = None) -> None:
    """An image with a full-width button under it (full label, wrapped) that opens it in Explore."""
    image(ws.items.at[row, "path"])
    if st.button(wrappable(md(label)), key=key, width="stretch", help=md(help) if help else None):
        open_item(str(ws.items.at[row, "item"]))


def render_detail(
    ex: Explorer,
    pred: Prediction,
    source: str | bytes,
    truth: list[str] | None,
    neighbours: list[tuple[int, float]],
    key: str,
    per_row: int = 4,
    caption_label: tuple[list[str], float | None] | None = None,
) -> None:
    """One image: its phrases, both models' probabilities side by side, zero-shot, neighbours
    (``per_row`` tiles a row: fewer in a narrow column), and the caption label the caption models
    trained on, where it has one.

    Clicking a neighbour opens it in Explore (through the ``item`` query parameter).
    """
    import plotly.express as px

    top, info = st.columns([1, 2])
    with top:
        image(source)
    with info:
        st.markdown(f"**{md(pred.image)}**")
        if truth is not None:
            st.markdown("True label: " + md_join(truth, empty="_none_"))
        if caption_label is not None:
            names, confidence = caption_label
            st.markdown(
                "Caption label: " + md_join(names, empty="_none_") + ("" if confidence is None else f" ({confidence:.2f})"),
                help="Read from this unlabelled training image's caption by the caption classifier (with its "
                "confidence): the label the caption models trained on for it.",
            )
        best = best_model(ex.ws).name
        if pred.rankings.get(best):
            suggestion = pred.rankings[best][0][0]
            st.markdown(f"**Suggested label**: {md(suggestion)} ({MODEL_NAMES[best]}, best on held-out labelled images)")
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
        column_config={
            # "medium": a narrow column still shows the scores beside the phrases
            "phrase": st.column_config.TextColumn("phrase", width="medium"),
            "score": st.column_config.ProgressColumn("cosine", min_value=0.0, max_value=1.0, format="%.2f", width="small"),
        },
    )
    table = probability_table(pred)
    table["label"] = table["label"].map(plotly_text)  # Plotly reads HTML in tick labels and hovers
    table["model"] = table["model"].map(MODEL_NAMES)
    fig = px.bar(
        table,
        x="probability",
        y="label",
        color="model",
        barmode="group",
        orientation="h",
        height=80 + 28 * table["label"].nunique(),
        color_discrete_map={MODEL_NAMES["baseline"]: "#94a3b8", MODEL_NAMES["multimodal"]: "#2563eb"},
        range_x=[0, 1],
    )
    fig.update_layout(
        margin=dict(l=0, r=0, t=30, b=0),
        yaxis=dict(autorange="reversed", title=None),
        legend=dict(title=None, orientation="h", x=0, y=1.0, yanchor="bottom"),  # above the bars, not over them
    )
    fig.update_yaxes(automargin=True)
    st.plotly_chart(fig, width="stretch", key=f"{key}_bars", config={"displayModeBar": False})  # no toolbar over it
    st.markdown("**Zero-shot** top labels: " + ", ".join(f"{md(n)} ({p:.2f})" for n, p in pred.zeroshot[:3]))
    if neighbours:
        st.markdown("**Nearest images** (visual cosine similarity under each)")
        items = ex.ws.items
        for (row, sim), col in grid(neighbours[: 2 * per_row], per_row):
            with col:
                labs = ", ".join(items.at[row, "labels"]) or "—"
                image_tile(ex.ws, row, f"{key}_nb_{row}", f"{sim:.2f} · {labs}", help=f"cosine {sim:.3f} · {labs}")


def open_item(item: str) -> None:
    """Show ``item`` in Explore's detail view (shareable: the item is in the URL)."""
    st.switch_page("views/explore.py", query_params={"item": item})


#: Above this many images, picking one is a typed image id (a select box sends every option to the browser).
PICKER_MAX = 10_000


def item_picker(
    label: str, items: pd.Series, key: str, row_of: Callable[[str], int | None], *, optional: bool = False
) -> int | None:
    """One image of ``items`` (item ids): a select box up to :data:`PICKER_MAX` images, a typed id
    above. Returns its row in the workspace; ``None`` when ``optional`` and none is chosen (the
    select box's "—", an empty box), or for an unknown typed id (after a warning). Without
    ``optional`` the first image is the default."""
    if len(items) <= PICKER_MAX:
        chosen = st.selectbox(label, ["—"] * optional + items.astype(str).tolist(), key=key)
        return None if optional and chosen == "—" else row_of(chosen)
    default = "" if optional else str(items.iloc[0])
    typed = st.text_input(f"{label}: its id ({len(items):,} images: too many to list)", value=default, key=key).strip()
    if optional and not typed:
        return None
    row = row_of(typed)
    if row is None:
        st.warning(f"No image {md(repr(typed))} in this workspace (an id is the image's path as the manifest writes it).")
    return row
