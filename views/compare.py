"""Compare: where does the multimodal model beat the visual baseline, and why?"""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.compare import (
    CAPTION_GROUP,
    best_model,
    caption_models_note,
    confusion_matrix,
    model_groups,
    per_label_table,
    pr_curves,
    top_confusions,
)
from core.explore import GalleryFilter
from core.predictions import attached_metrics
from ui import state
from ui.frame import workspace
from ui.loaders import explorer_for
from ui.safe_text import md, md_join, plotly_text
from ui.widgets import MODEL_NAMES, grid, image, metrics_table, open_item

HEATMAP_MAX_LABELS = 60  # above this a confusion matrix is unreadable: show the top confusions instead

ws = workspace()
ex = explorer_for(ws)
st.title("Compare models")
metric_name = "AP" if ws.multilabel else "F1"

st.subheader(f"Test-split metrics ({ws.manifest['n_test']} images)")
st.info(best_model(ws).sentence)
metrics = {**ws.metrics, **{f"{n} (your predictions)": m for n, m in attached_metrics(ws).items()}}
for group, models in model_groups(metrics).items():
    if group == CAPTION_GROUP and (note := caption_models_note(ex)):
        st.caption(note)
    if models:
        st.markdown(f"**{group[0].upper()}{group[1:]}**")
        st.dataframe(metrics_table({m: metrics[m] for m in models}), width="stretch")

table = per_label_table(ex)
plotted = table.dropna(subset=["delta"]).assign(label=lambda t: t["label"].map(plotly_text))  # Plotly reads HTML
COLUMNS = {  # the per-label table's columns, for people
    "n_train": "training images with this label",
    "n_test": "test images",
    "baseline": f"baseline {metric_name}",
    "multimodal": f"multimodal {metric_name}",
    "delta": f"Δ {metric_name} (multimodal − baseline)",
}
left, right = st.columns(2)
with left:
    st.subheader(f"Per-label {metric_name}: multimodal − baseline")
    fig = px.bar(
        plotted,
        x="delta",
        y="label",
        orientation="h",
        color="delta",
        color_continuous_scale="RdBu",
        color_continuous_midpoint=0,
        hover_data={"n_train": True, "n_test": True, "baseline": ":.3f", "multimodal": ":.3f", "delta": ":.3f"},
        labels=COLUMNS,
        height=max(320, 60 + 17 * len(table)),
    )
    yaxis = dict(autorange="reversed", title=None, tickmode="linear", dtick=1)  # every label ticked
    fig.update_layout(margin=dict(l=0, r=0, t=32, b=0), yaxis=yaxis, coloraxis_showscale=False)
    st.plotly_chart(fig, width="stretch")
with right:
    st.subheader("Gain against training examples")
    st.caption("The paper's few-shot view: does the phrase context help labels with few training images most?")
    fig = px.scatter(
        plotted,
        x="n_train",
        y="delta",
        hover_name="label",
        log_x=True,
        labels=COLUMNS,
        height=360,
    )
    fig.add_hline(y=0, line_dash="dot", line_color="#64748b")
    ticks = [t for t in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= 2 * plotted["n_train"].max()]
    fig.update_xaxes(tickvals=ticks)  # whole counts (a log axis otherwise labels its minor ticks 2..9 over each other)
    fig.update_layout(margin=dict(l=0, r=0, t=32, b=0))
    st.plotly_chart(fig, width="stretch")
# below both charts: at half width its last columns scroll out of sight
st.dataframe(
    table[["label", "n_train", "n_test", "baseline", "multimodal", "delta"]],
    hide_index=True,
    width="stretch",
    height=300,
    column_config={
        "n_train": st.column_config.NumberColumn("training images"),
        "n_test": st.column_config.NumberColumn("test images"),
        **{c: st.column_config.NumberColumn(COLUMNS[c].split(" (")[0], format="%.3f") for c in ("baseline", "multimodal")},
        "delta": st.column_config.NumberColumn(f"Δ {metric_name}", format="%+.3f"),
    },
)

if ws.multilabel:
    st.subheader("Precision–recall (micro-averaged, test split)")
    curves = pr_curves(ex).assign(model=lambda c: c["model"].map(MODEL_NAMES))
    fig = px.line(curves, x="recall", y="precision", color="model", height=420, range_y=[0, 1.02])
    fig.update_layout(legend_title=None)
    st.plotly_chart(fig, width="stretch")
else:
    st.subheader("Confusion matrices (test split)")
    if len(ex.labels) <= HEATMAP_MAX_LABELS:
        # one full-width matrix per tab (side by side, 40 labels' ticks overlap), on one colour scale
        names = [plotly_text(lab) for lab in ex.labels]  # full labels, every one ticked
        matrices = {model: confusion_matrix(ex, model) for model in ("baseline", "multimodal")}
        top = max(int(cm.max()) for cm in matrices.values())
        tick = dict(tickmode="array", tickvals=names, ticktext=names, tickfont=dict(size=11), automargin=True)
        for tab, (model, cm) in zip(st.tabs([MODEL_NAMES[m] for m in matrices]), matrices.items()):
            fig = go.Figure(
                go.Heatmap(
                    z=cm,
                    x=names,
                    y=names,
                    zmin=0,
                    zmax=top,
                    colorscale="Blues",
                    colorbar=dict(title=dict(text="images", side="right")),  # not under the chart's toolbar
                    hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>",
                )
            )
            fig.update_xaxes(title_text="predicted label", tickangle=-90, **tick)
            fig.update_yaxes(title_text="true label", autorange="reversed", **tick)
            fig.update_layout(height=260 + 18 * len(names), margin=dict(t=10))
            tab.plotly_chart(fig, width="stretch", key=f"cmp_confusion_{model}")
    c1, c2 = st.columns(2)
    for col, model in zip((c1, c2), ("baseline", "multimodal")):
        col.markdown(f"**{MODEL_NAMES[model]}: most frequent mistakes**")
        col.dataframe(top_confusions(ex, model, 10), hide_index=True, width="stretch")

st.subheader("Where the multimodal model wins and loses")
st.caption("Test images the two models disagree on, with the generated phrases that fed the multimodal model.")
WHICH = ["Wins (baseline wrong, multimodal right)", "Losses (baseline right, multimodal wrong)"]
FIELDS = {"cmp_which": ("which", WHICH[0]), "cmp_label": ("label", "All")}  # in the URL: Back restores them
state.restore("compare", FIELDS, valid={"cmp_which": WHICH, "cmp_label": ["All", *ex.labels]})
c1, c2 = st.columns([1, 2])
which = c1.radio("Show", WHICH, key="cmp_which")
label = c2.selectbox("True label", ["All", *ex.labels], key="cmp_label")
state.save("compare", FIELDS, {"cmp_which": which, "cmp_label": label})
rows = ex.filter(
    GalleryFilter(
        split="test", change="fixed" if which.startswith("Wins") else "broke", true_labels=[] if label == "All" else [label]
    )
)
st.markdown(f"**{len(rows)}** test images")
labels = np.array(ex.labels)
for row, col in grid(rows[:24], 6):
    with col:
        image(ws.items.at[row, "path"])
        phrases = md_join((p for p, _ in ws.item_phrases(int(row), 3)), empty="")
        st.caption(
            f"**{md_join(ws.items.at[row, 'labels'])}**  \nbaseline: {md(labels[ex.top['baseline'][row]])}  \n"
            f"multimodal: {md(labels[ex.top['multimodal'][row]])}  \n_{phrases}_"
        )
        if st.button("Details", key=f"cmp_open_{row}", width="stretch"):
            open_item(str(ws.items.at[row, "item"]))
