"""Home: which workspace, what data, and the headline comparison of the models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core.compare import MODEL_GROUPS, best_model
from pages.common import MODEL_NAMES, StreamlitProgress, current_workspace, workspace_sidebar


def _mark(ok: bool) -> str:
    return ":green[**✓**]" if ok else ":red[**✗**]"


workspace_sidebar()
st.title("Pixel Context")
st.caption(
    "Multimodal image classification that infers context from pixels: each image gets web-query-like phrases "
    "from a phrase generator, their text embedding joins the visual one, and the multimodal classifier is "
    "compared with a visual-only baseline of the same architecture."
)

ws = current_workspace()
if ws is None:
    st.stop()

items = ws.items
m = ws.manifest
n_test = m["n_test"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Images", f"{len(items):,}")
c2.metric("Labels", len(ws.labels))
c3.metric("Labelled for training", f"{m['n_labelled']:,}")
c4.metric("Phrases in the output space", f"{m['n_phrases']:,}")
st.caption(f"Workspace `{ws.path}` · dataset `{Path(m['dataset']['source']).name}` · backbone `{m['config']['backbone']}`")

st.subheader(f"Test-split metrics ({n_test} images)")
if m["config"].get("label_fraction", 1.0) < 1.0:
    st.caption(
        f"Labels kept for {m['config']['label_fraction']:.0%} of each label's training images (seed {m['config']['seed']}); "
        "captions for all."
    )
st.info(best_model(ws).sentence)
metrics = pd.DataFrame(ws.metrics).T.rename(index=MODEL_NAMES)
key = "top1" if "top1" in ws.metrics["baseline"] else "mAP"
base, multi = ws.metrics["baseline"][key], ws.metrics["multimodal"][key]
groups = {**MODEL_GROUPS, "no labels": ("zeroshot",)}
for group, models in groups.items():
    present = [model for model in models if model in ws.metrics]
    if not present:
        continue
    st.markdown(f"**{group[0].upper()}{group[1:]}**")
    cols = st.columns(4)
    for col, model in zip(cols, present):
        val = ws.metrics[model][key]
        delta = None if model == "baseline" else f"{val - base:+.3f} vs baseline"
        col.metric(f"{MODEL_NAMES[model]} · {key}", f"{val:.3f}", delta=delta)
st.dataframe(metrics.style.format("{:.3f}"), width="stretch")
if multi < base:
    st.warning(
        f"Here the multimodal model is below the baseline ({multi:.3f} vs {base:.3f} {key}). The phrases help most "
        "where labels are scarce and captions plentiful: fit with a share of the labels (sidebar), or see docs/results.md."
    )

left, right = st.columns([1, 1])
with left:
    st.subheader("Label distribution")
    counts = pd.Series([lab for labs in items["labels"] for lab in labs]).value_counts()
    fig = px.bar(
        x=counts.values, y=counts.index, orientation="h", labels={"x": "images", "y": ""}, height=max(300, 16 * len(counts))
    )
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(autorange="reversed"))
    st.plotly_chart(fig, width="stretch")
with right:
    st.subheader("Test images")
    show = st.radio("Show", ["Random", "Multimodal fixed the baseline", "Multimodal broke it"], horizontal=True, key="home_show")
    test = np.flatnonzero(items["is_test"].to_numpy())
    pred = ws.predictions
    labels = np.array(ws.labels)
    truth = items["labels"].map(lambda ls: ls[0] if ls else "")
    b_ok = labels[pred["baseline"].argmax(1)] == truth.to_numpy()
    m_ok = labels[pred["multimodal"].argmax(1)] == truth.to_numpy()
    if show == "Multimodal fixed the baseline":
        test = test[(~b_ok[test]) & m_ok[test]]
    elif show == "Multimodal broke it":
        test = test[b_ok[test] & (~m_ok[test])]
    rng = np.random.default_rng(0)
    pick = rng.permutation(test)[:12]
    if len(pick) == 0:
        st.info("No test image in this group.")
    grid = st.columns(4)
    for n, row in enumerate(pick):
        with grid[n % 4]:
            st.image(items.at[row, "path"], width="stretch")
            pb = labels[pred["baseline"][row].argmax()]
            pm = labels[pred["multimodal"][row].argmax()]
            phrases = ", ".join(p for p, _ in ws.item_phrases(int(row), 3))
            st.caption(
                f"**{truth[row]}**  \nbaseline: {_mark(b_ok[row])} {pb}  \nmultimodal: {_mark(m_ok[row])} {pm}  \n_{phrases}_"
            )

with st.sidebar.expander("Fit a new workspace"):
    data = st.text_input("Dataset (manifest or image folder)", key="fit_data")
    out = st.text_input("Workspace folder", key="fit_out")
    frac = st.slider("Share of training labels kept", 0.05, 1.0, 1.0, 0.05, key="fit_frac")
    if st.button("Fit", disabled=not (data and out)):
        from core.config import FitConfig
        from core.pipeline import fit

        try:
            with st.status("Fitting…", expanded=True) as status:
                path = fit(data, out, FitConfig(label_fraction=frac), progress=StreamlitProgress()).path
                status.update(label=f"Fitted {path}", state="complete")
            st.session_state["workspace_path"] = str(path)
            st.rerun()
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            st.error(str(exc))
