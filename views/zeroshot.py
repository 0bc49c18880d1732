"""Zero-shot: classify with labels you type, through the phrase generator's co-embedding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from core.compare import best_model, zeroshot_images, zeroshot_report
from core.zeroshot import parse_label_spec
from ui.frame import workspace
from ui.loaders import explorer_for, predict_upload
from ui.safe_text import md, md_join, plotly_text
from ui.widgets import MODEL_NAMES, grid, image, score_text

ws = workspace()
ex = explorer_for(ws)
st.title("Zero-shot")
st.caption(
    "No training labels: each typed label (and its synonyms) is placed in the phrase generator's co-embedding "
    "space, through its phrase prototype when the phrase is in the vocabulary and a learned text→co-embedding "
    "map otherwise; the nearest label wins. Names that match dataset labels are scored against the truth."
)

default = ", ".join(ex.labels)  # the dataset's own labels: the score then equals the zero-shot row on Home
spec = st.text_area("Labels (comma-separated; synonyms after `|`, e.g. `car|automobile, bird|parrot`)", default, key="zs_labels")
labels = parse_label_spec(spec)
source = st.radio("Classify", ["The test split", "Uploaded images"], horizontal=True, key="zs_source")
if len(labels) < 2:
    st.warning("Type at least two labels.")
    st.stop()
typed = [name for name, _ in labels]
best = best_model(ws).name  # the trained models compared: baseline, multimodal, and the one whose labels are suggested
compared = list(dict.fromkeys(("baseline", "multimodal", best)))

if source == "The test split":
    rows = np.flatnonzero(ws.items["is_test"].to_numpy())
    with st.spinner("Scoring the test split…"):
        report = zeroshot_report(ex, labels, rows)
    c1, c2, *cols = st.columns(2 + len(compared))
    # short labels: five metrics side by side (the full wording in each one's help)
    c1.metric("Labels matched", f"{len(report.matched)} / {len(ex.labels)}", help="Typed labels matching dataset labels")
    c2.metric("Zero-shot top-1", score_text(report.accuracy), help="On the test images whose true label a typed label names")
    for col, m in zip(cols, compared):
        v = report.trained_accuracy[m]
        col.metric(f"{MODEL_NAMES[m]} top-1", score_text(v), help="On the same test images")
    for name, candidates in report.ambiguous.items():
        st.warning(
            f"**{md(name)}** is ambiguous: it could name {md_join(candidates, sep=' or ')}, so it is scored against "
            f"none of them. Type the whole label (e.g. {md(candidates[0])}) to score it."
        )
    st.caption(
        f"{report.n_evaluated} of {len(rows)} test images have a true label named by a typed label: every score is "
        "on those images. The trained models choose among all dataset labels, the zero-shot model among the typed "
        "ones. With the default labels (the dataset's own) this is the zero-shot row of Home's table; other wordings "
        "score differently."
    )
    top = report.proba.argmax(1)
    counts = pd.Series(np.asarray(typed)[top]).value_counts().reindex(typed, fill_value=0)
    fig = px.bar(
        x=[plotly_text(v) for v in counts.index],
        y=counts.values,
        labels={"x": "zero-shot prediction", "y": "test images"},
        height=340,
    )
    fig.update_layout(margin=dict(l=0, r=0, t=32, b=0))
    st.plotly_chart(fig, width="stretch")
    pick = st.selectbox("Show test images predicted as", typed, key="zs_show")
    shown = report.rows[top == typed.index(pick)][:18]
    for row, col in grid(shown, 6):
        with col:
            image(ws.items.at[row, "path"])
            st.caption("true: " + md_join(ws.items.at[row, "labels"]))
    if len(shown) == 0:
        st.info(f"No test image is predicted as {md(repr(pick))}.")
else:
    uploads = st.file_uploader("Images", accept_multiple_files=True, key="zs_upload")
    if not uploads:
        st.info("Upload one or more images.")
        st.stop()
    proba, errors = zeroshot_images(ws, [u.getvalue() for u in uploads], labels)
    for i, up in enumerate(uploads):
        with st.container(border=True):
            if i in errors:
                st.error(f"{md(up.name)}: {md(errors[i])}")
                continue
            c1, c2 = st.columns([1, 2])
            with c1:
                image(up.getvalue())
            order = np.argsort(-proba[i])[:5]
            fig = px.bar(x=proba[i][order], y=[plotly_text(typed[j]) for j in order], orientation="h", range_x=[0, 1], height=220)
            fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(autorange="reversed", title=None), xaxis_title=None)
            c2.markdown(f"**{md(up.name)}**")
            trained = predict_upload(ws, up.getvalue(), up.name)
            if trained.ok:
                c2.caption(" · ".join(f"{MODEL_NAMES[m]} (trained): {md(trained.rankings[m][0][0])}" for m in compared))
            c2.plotly_chart(fig, width="stretch", key=f"zs_bar_{i}")
