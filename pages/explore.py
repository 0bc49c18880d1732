"""Explore: a filterable, paginated gallery of every image, and one image's detail (URL-shareable)."""

from __future__ import annotations

import math

import streamlit as st

from core.explore import CHANGES, GalleryFilter
from pages.common import MODEL_NAMES, explorer_for, page_workspace, render_detail

PER_PAGE = 24
CHANGE_NAMES = {
    "any": "Any",
    "fixed": "Multimodal fixed the baseline",
    "broke": "Multimodal broke it",
    "both right": "Both right",
    "both wrong": "Both wrong",
}

ws = page_workspace()
ex = explorer_for(ws)
items = ws.items
st.title("Explore")

with st.expander("Filters", expanded=True):
    c1, c2, c3, c4 = st.columns(4)
    true_labels = c1.multiselect("True label", ex.labels, key="ex_true")
    split = c2.selectbox("Split", ["All", "test", "train"], key="ex_split")
    model = c3.selectbox(
        "Model", list(ex.models), format_func=lambda m: MODEL_NAMES.get(m, f"{m} (your predictions)"), index=1, key="ex_model"
    )
    predicted = c4.multiselect("Predicted label (model)", ex.labels, key="ex_pred")
    c5, c6, c7, c8 = st.columns(4)
    correct = c5.radio("Model's top label", ["Any", "Correct", "Wrong"], horizontal=True, key="ex_correct")
    change = c6.selectbox("Multimodal vs baseline", CHANGES, format_func=CHANGE_NAMES.get, key="ex_change")
    conf = c7.slider("Model confidence", 0.0, 1.0, (0.0, 1.0), 0.05, key="ex_conf")
    phrase = c8.text_input("Generated phrase contains", key="ex_phrase", placeholder="e.g. guitar")

rows = ex.filter(
    GalleryFilter(
        true_labels=true_labels,
        split=None if split == "All" else split,
        model=model,
        predicted=predicted,
        correct=None if correct == "Any" else correct == "Correct",
        change=change,
        confidence=conf,
        phrase=phrase,
    )
)

selected = ex.row_of(st.query_params.get("item", ""))
gallery, detail = st.columns([3, 2], gap="large")
with gallery:
    n_pages = max(1, math.ceil(len(rows) / PER_PAGE))
    if st.session_state.get("ex_page", 1) > n_pages:  # filters narrowed: back to the first page
        st.session_state["ex_page"] = 1
    top = st.columns([2, 1])
    top[0].markdown(f"**{len(rows):,}** of {ex.n:,} images")
    page = top[1].number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="ex_page")
    shown = rows[(page - 1) * PER_PAGE : page * PER_PAGE]
    if len(shown) == 0:
        st.info("No image matches these filters.")
    grid = st.columns(4)
    labels = ex.labels
    for n, row in enumerate(shown):
        with grid[n % 4]:
            st.image(items.at[row, "path"], width="stretch")
            pm = labels[ex.top[model][row]]
            mark = "✓" if ex.correct[model][row] else ("✗" if ex.has_truth[row] else "·")
            truth = ", ".join(items.at[row, "labels"]) or "—"
            if st.button(f"{mark} {pm}", key=f"ex_open_{row}", help=f"true: {truth}", width="stretch"):
                st.query_params["item"] = str(items.at[row, "item"])
                st.rerun()
            st.caption(truth)

with detail:
    if selected is None:
        if st.query_params.get("item"):
            st.warning(f"No image {st.query_params['item']!r} in this workspace.")
        st.info("Click an image to see its phrases, both models' probabilities and its nearest neighbours.")
    else:
        with st.container(border=True):
            if st.button("Close", key="ex_close"):
                del st.query_params["item"]
                st.rerun()
            render_detail(
                ex,
                ex.prediction(selected),
                items.at[selected, "path"],
                ex.true_labels(selected),
                ex.neighbours(selected),
                key="ex_detail",
            )
