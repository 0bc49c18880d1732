"""Home: which workspace, what data, and the headline comparison of the models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.express as px
import streamlit as st

from core.compare import CAPTION_GROUP, best_model, caption_models_note, model_groups
from core.explore import GalleryFilter
from ui.frame import workspace
from ui.loaders import explorer_for
from ui.safe_text import md, md_join, plotly_text
from ui.widgets import MODEL_NAMES, grid, image, metrics_table, score_text, wrappable


def _mark(ok: bool) -> str:
    return ":green[**✓**]" if ok else ":red[**✗**]"


st.title("Pixel Context")
st.caption(
    "Multimodal image classification that infers context from pixels: each image gets web-query-like phrases "
    "from a phrase generator, their text embedding joins the visual one, and the multimodal classifier is "
    "compared with a visual-only baseline of the same architecture."
)

ws = workspace()
ex = explorer_for(ws)

items = ws.items
m = ws.manifest
n_test = m["n_test"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(items):,}")
c2.metric("Labels", len(ws.labels))
c3.metric("Labelled for training", f"{m['n_labelled']:,}")
n_protos = len(ws.maps.prototype_ids) if ws.maps is not None else None
c4.metric(
    "Phrases in the vocabulary",
    f"{m['n_phrases']:,}",
    help="Every phrase an image can be given."
    + (
        f" {n_protos:,} of them are frequent enough to be the generator's own output classes: those are the "
        "prototypes drawn on the Prototype map."
        if n_protos is not None
        else ""
    ),
)
st.caption(f"Workspace {md(ws.path)} · dataset {md(Path(m['dataset']['source']).name)} · backbone {md(m['config']['backbone'])}")

st.subheader(f"Test-split metrics ({n_test} images)")
if m["config"].get("label_fraction", 1.0) < 1.0:
    st.caption(
        f"Labels kept for {m['config']['label_fraction']:.0%} of each label's training images (seed {m['config']['seed']}); "
        "captions for all."
    )
st.info(best_model(ws).sentence)
metrics = ws.metrics
key = "top1" if "top1" in metrics["baseline"] else "mAP"
base, multi = metrics["baseline"][key], metrics["multimodal"][key]
for group, present in model_groups(metrics).items():
    if group == CAPTION_GROUP and (note := caption_models_note(ex)):
        st.caption(note)
    if not present:
        continue
    st.markdown(f"**{group[0].upper()}{group[1:]}**")
    cols = st.columns(4)
    for col, model in zip(cols, present):
        val = metrics[model][key]
        delta = None if model == "baseline" or np.isnan(val - base) else f"{val - base:+.3f} vs baseline"
        col.metric(f"{MODEL_NAMES[model]} · {key}", score_text(val), delta=delta)
st.dataframe(metrics_table(metrics), width="stretch")
if multi < base:
    st.warning(
        f"Here the multimodal model is below the baseline ({multi:.3f} vs {base:.3f} {key}). The phrases help most "
        "where labels are scarce and captions plentiful: fit with a share of the labels (sidebar: Fit a new "
        "workspace), or see docs/results.md."
    )

left, right = st.columns([1, 1])
with left:
    st.subheader("Label distribution")
    counts = ex.label_counts
    fig = px.bar(
        x=counts.values,
        y=[plotly_text(v) for v in counts.index],  # Plotly reads HTML in tick labels
        orientation="h",
        labels={"x": "images", "y": ""},
        height=max(300, 60 + 17 * len(counts)),
    )
    # every label ticked (Plotly otherwise drops every other one when they are close)
    fig.update_layout(margin=dict(l=0, r=0, t=32, b=0), yaxis=dict(autorange="reversed", tickmode="linear", dtick=1))
    st.plotly_chart(fig, width="stretch")
with right:
    st.subheader("Test images")
    show = st.radio("Show", ["Random", "Multimodal fixed the baseline", "Multimodal broke it"], horizontal=True, key="home_show")
    change = {"Random": "any", "Multimodal fixed the baseline": "fixed", "Multimodal broke it": "broke"}[show]
    test = ex.filter(GalleryFilter(split="test", change=change))
    labels = np.array(ex.labels)
    rng = np.random.default_rng(0)
    pick = rng.permutation(test)[:12]
    if len(pick) == 0:
        st.info("No test image in this group.")
    for row, col in grid(pick, 4):
        with col:
            image(items.at[row, "path"])
            truth = wrappable(md_join(items.at[row, "labels"]))
            pb, pm = (wrappable(md(labels[ex.top[m][row]])) for m in ("baseline", "multimodal"))
            phrases = md_join((p for p, _ in ws.item_phrases(int(row), 3)), empty="")
            st.caption(
                f"**{truth}**  \nbaseline: {_mark(ex.correct['baseline'][row])} {pb}  \n"
                f"multimodal: {_mark(ex.correct['multimodal'][row])} {pm}  \n_{phrases}_"
            )
