"""Explore: a filterable, paginated gallery of every image, and one image's detail (URL-shareable)."""

from __future__ import annotations

import math

import streamlit as st

from core.compare import best_model
from core.config import CAPTION_MODELS
from core.explore import CHANGES, GalleryFilter
from ui import state
from ui.frame import workspace
from ui.loaders import explorer_for
from ui.safe_text import md, md_join
from ui.widgets import MODEL_NAMES, StreamlitProgress, grid, image, render_detail, wrappable

PER_PAGE = 24
CHANGE_NAMES = {
    "any": "Any",
    "fixed": "Multimodal fixed the baseline",
    "broke": "Multimodal broke it",
    "both right": "Both right",
    "both wrong": "Both wrong",
}

ws = workspace()
ex = explorer_for(ws)
items = ws.items
suggesting = best_model(ws).name  # the gallery opens on the model whose labels the app suggests
default_model = suggesting if suggesting in ex.models else "multimodal"
st.title("Explore")

# Filters live in the URL (a shared link carries them) and survive a visit to another page.
FIELDS = {
    "ex_true": ("true", []),
    "ex_split": ("split", "All"),
    "ex_model": ("model", default_model),
    "ex_pred": ("pred", []),
    "ex_correct": ("correct", "Any"),
    "ex_change": ("change", "any"),
    "ex_conf": ("conf", (0.0, 1.0)),
    "ex_phrase": ("phrase", ""),
    "ex_page": ("page", 1),
}
SPLITS, CORRECT = ["All", "test", "train"], ["Any", "Correct", "Wrong"]
state.restore(
    "explore",
    FIELDS,
    valid={
        "ex_true": ex.labels,
        "ex_pred": ex.labels,
        "ex_split": SPLITS,
        "ex_model": list(ex.models),
        "ex_correct": CORRECT,
        "ex_change": CHANGES,
    },
    scope=str(ws.path),  # after a switch of workspace, a model left at the default follows the new one's best
)
saved_item = st.session_state.get("_saved_explore", {}).get("item")
if "item" not in st.query_params and saved_item:
    st.query_params["item"] = saved_item  # back from another page: the image that was open

with st.expander("Filters", expanded=True):
    c1, c2, c3, c4 = st.columns(4)
    true_labels = c1.multiselect("True label", ex.labels, key="ex_true")
    split = c2.selectbox("Split", SPLITS, key="ex_split")
    model = c3.selectbox(
        "Model",
        list(ex.models),
        format_func=lambda m: MODEL_NAMES.get(m, f"{m} (your predictions)"),
        key="ex_model",
        help="Opens on the model that is best on the held-out labelled training images: the one whose labels are suggested.",
    )
    predicted = c4.multiselect("Predicted label (model)", ex.labels, key="ex_pred")
    c5, c6, c7, c8 = st.columns(4)
    correct = c5.radio("Model's top label", CORRECT, horizontal=True, key="ex_correct")
    change = c6.selectbox("Multimodal vs baseline", CHANGES, format_func=CHANGE_NAMES.get, key="ex_change")
    conf = c7.slider("Model confidence", 0.0, 1.0, step=0.05, key="ex_conf")
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
    if not 1 <= st.session_state.get("ex_page", 1) <= n_pages:  # filters narrowed (or a bad link): first page
        st.session_state["ex_page"] = 1
    top = st.columns([2, 1])
    top[0].markdown(f"**{len(rows):,}** of {ex.n:,} images")
    page = top[1].number_input(f"Page (of {n_pages})", 1, n_pages, key="ex_page")
    state.save("explore", FIELDS, {k: st.session_state[k] for k in FIELDS} | {"item": st.query_params.get("item")})
    shown = rows[(page - 1) * PER_PAGE : page * PER_PAGE]
    how = ""
    if split != "test" and model in ws.crossfit_models:
        how = " On labelled training images it is cross-validated: from a model that never saw the image."
    elif split != "test" and model in CAPTION_MODELS and model in ws.classifier_models:
        how = (
            " On training images it is this model's fit of a label it trained on: the human label, or on an"
            " unlabelled image the caption label (in its detail)."
        )
    elif split != "test" and model in ws.classifier_models:
        how = " On labelled training images it is this model's fit of a label it trained on."
    st.caption(
        f"Under each image: the top label of {md(MODEL_NAMES.get(model, model))} (✓ right, ✗ wrong), then the true label.{how}"
    )
    if len(shown) == 0:
        st.info("No image matches these filters.")
    labels = ex.labels
    for row, col in grid(shown, 4):
        with col:
            image(items.at[row, "path"])
            pm = labels[ex.top[model][row]]
            mark = "✓" if ex.correct[model][row] else ("✗" if ex.has_truth[row] else "·")
            truth = md_join(items.at[row, "labels"])
            if st.button(wrappable(f"{mark} {md(pm)}"), key=f"ex_open_{row}", help=f"true: {truth}", width="stretch"):
                st.query_params["item"] = str(items.at[row, "item"])
                st.rerun()
            st.caption(truth)

with detail:
    if selected is None:
        if st.query_params.get("item"):
            st.warning(f"No image {md(repr(st.query_params['item']))} in this workspace.")
        st.info("Click an image to see its phrases, both models' probabilities and its nearest neighbours.")
    else:
        with st.container(border=True):
            if st.button("Close", key="ex_close"):
                del st.query_params["item"]
                st.session_state["_saved_explore"]["item"] = None
                st.rerun()
            render_detail(
                ex,
                ex.prediction(selected),
                items.at[selected, "path"],
                ex.true_labels(selected),
                ex.neighbours(selected, progress=StreamlitProgress()),  # a bar only if the index must be built
                key="ex_detail",
                per_row=3,
                caption_label=ex.caption_label(selected),
            )
