"""Prototype map: the UMAP of phrase prototypes (and images) in the phrase generator's co-embedding."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.maps import MAX_POINTS, display_sample, has_map, image_table, images_near, map_sample, prototype_table
from ui.frame import workspace
from ui.loaders import explorer_for
from ui.safe_text import plotly_text
from ui.widgets import grid, image_tile

PROTOTYPE, IMAGE = 0, 1

ws = workspace()
ex = explorer_for(ws)
st.title("Prototype map")
if not has_map(ex):
    st.info(
        "This workspace has no prototype map: it was fitted with the ImageNet phrase source (no co-embedding) "
        "or without projections."
    )
    st.stop()
st.caption(
    "Each point is a phrase prototype (the mean co-embedding of the images carrying the phrase), laid out in 2-D "
    "by UMAP with the images. Hover a point for its phrase; click a point, or drag a box or a lasso (the two "
    "selection tools in the chart's toolbar), to list the phrases and see the images nearest to them."
)


@st.cache_data(show_spinner=False)
def tables(path: str, mtime: float):
    return prototype_table(ex), image_table(ex)


protos, images = tables(str(ws.path), ws.path.joinpath("manifest.json").stat().st_mtime)
c1, c2, c3 = st.columns([1, 1, 2])
colour = c1.radio("Colour prototypes by", ["Nearest label", "Phrase frequency"], key="map_colour")
show_images = c2.toggle("Image layer", value=False, key="map_images")
query = c3.text_input("Highlight phrases containing", key="map_query", placeholder="e.g. flower")

shown, sampled = display_sample(protos)
fig = go.Figure()
layers: list[tuple[int, pd.DataFrame]] = []  # (kind, rows) of every trace, in drawing order: selections map back by index
hover = "%{hovertext}<br>%{customdata} training images<extra></extra>"


def add_layer(kind: int, rows: pd.DataFrame, trace: go.Scattergl) -> None:
    layers.append((kind, rows.reset_index(drop=True)))
    fig.add_trace(trace)


if colour == "Nearest label":  # one trace per label: the legend names the colours
    palette = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
    for i, (label, group) in enumerate(shown.groupby("label", sort=True)):
        add_layer(
            PROTOTYPE,
            group,
            go.Scattergl(
                x=group["x"],
                y=group["y"],
                mode="markers",
                name=plotly_text(label),
                hovertext=(group["phrase"] + " · " + label).map(plotly_text),
                marker=dict(size=5, color=palette[i % len(palette)], opacity=0.8),
                hovertemplate=hover,
                customdata=group["images"],
            ),
        )
else:
    add_layer(
        PROTOTYPE,
        shown,
        go.Scattergl(
            x=shown["x"],
            y=shown["y"],
            mode="markers",
            name="prototypes",
            hovertext=(shown["phrase"] + " · " + shown["label"]).map(plotly_text),
            marker=dict(
                size=5,
                color=shown["images"],
                colorscale="Viridis",
                cmin=1,
                opacity=0.8,
                cmax=max(int(shown["images"].quantile(0.99)), 2),
                colorbar=dict(title="training images", x=1.0, xanchor="left", len=0.6, y=1.0, yanchor="top"),
            ),
            customdata=shown["images"],
            hovertemplate=hover,
        ),
    )
if show_images:
    img_shown, img_sampled = display_sample(images)
    sampled |= img_sampled
    add_layer(
        IMAGE,
        img_shown,
        go.Scattergl(
            x=img_shown["x"],
            y=img_shown["y"],
            mode="markers",
            name="images",
            marker=dict(size=4, color="#94a3b8", symbol="diamond", opacity=0.5),
            hovertext=img_shown["label"].map(plotly_text),
            hovertemplate="image · %{hovertext}<extra></extra>",
        ),
    )
highlight = ex.matching_phrase_ids(query) if query.strip() else None
if highlight is not None:
    hit = shown[shown["vocab_id"].isin(highlight)]
    add_layer(
        PROTOTYPE,
        hit,
        go.Scattergl(
            x=hit["x"],
            y=hit["y"],
            mode="markers+text",
            text=hit["phrase"],  # drawn by WebGL, which reads no HTML: the raw phrase
            textposition="top center",
            name="matches",
            marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color="#dc2626", width=2)),
            customdata=hit["images"],
            hovertemplate=hover,
            hovertext=hit["phrase"].map(plotly_text),
        ),
    )
n_legend = len(layers) if colour == "Nearest label" or show_images else 0
legend_rows = -(-n_legend // 4)  # a horizontal legend under the map, four entries a row: every label visible
# No preset drag mode: Streamlit then lets a click select a point (in box or lasso mode a click only
# hovers); box and lasso are the toolbar's selection tools.
legend_share = 22 * legend_rows / (640 + 22 * legend_rows)  # the bottom of the chart, kept for the legend
fig.update_layout(
    height=640 + 22 * legend_rows,
    margin=dict(l=0, r=0, t=10, b=0),
    showlegend=n_legend > 0,
    legend=dict(orientation="h", x=0, xanchor="left", y=legend_share, yanchor="top", entrywidth=0.25, entrywidthmode="fraction"),
    xaxis=dict(visible=False),
    yaxis=dict(visible=False, domain=[legend_share, 1.0]),
)
event = st.plotly_chart(fig, width="stretch", key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"))
fit_sample = map_sample(ex)
if sampled:
    scope = "every prototype the fit laid out" if fit_sample else "every prototype"
    st.caption(
        f"Above {MAX_POINTS:,} points per layer the map draws a random sample of {MAX_POINTS:,} (seeded); selections "
        f"and searches still cover {scope}."
    )
if fit_sample:
    st.caption(
        f"The fit laid out a random sample (seeded) of {fit_sample[0]:,} of the generator's {fit_sample[1]:,} distinct "
        "phrase prototypes: highlights and selections here cover that sample; the gallery's phrase filter and "
        "predictions use every phrase."
    )
st.caption(
    f"{len(protos):,} phrase prototypes on the map (the phrases that train the generator's softmax; the vocabulary "
    f"also holds rarer phrases without a prototype), {len(images):,} images."
)


def selected_rows(points: list[dict]) -> tuple[list[int], list[int]]:
    """(vocabulary ids, image rows) of the selected points, through each point's trace and index."""
    phrases, rows = [], []
    for pt in points:
        curve, index = pt.get("curve_number"), pt.get("point_index", pt.get("point_number"))
        if curve is None or index is None or not 0 <= int(curve) < len(layers):
            continue
        kind, frame = layers[int(curve)]
        if int(index) < len(frame):
            if kind == PROTOTYPE:
                phrases.append(int(frame.at[int(index), "vocab_id"]))
            else:
                rows.append(int(frame.at[int(index), "row"]))
    return list(dict.fromkeys(phrases)), list(dict.fromkeys(rows))


points = (event.selection.points if event and event.selection else []) or []
chosen, chosen_images = selected_rows(points)
if not chosen and highlight is not None:
    chosen = list(highlight)
if not chosen and not chosen_images:
    st.info(
        "Select points on the map (click, box or lasso), or type a phrase above, to see the phrases and the images "
        "nearest to them."
    )
    st.stop()

left, right = st.columns([1, 2])
with left:
    sel = protos[protos["vocab_id"].isin(chosen)].sort_values("images", ascending=False)
    st.markdown(
        f"**{len(sel)} phrase{'' if len(sel) == 1 else 's'} selected**"
        + (f" · {len(chosen_images)} images" if chosen_images else "")
    )
    st.dataframe(
        sel[["phrase", "images", "label"]],
        hide_index=True,
        width="stretch",
        height=420,
        column_config={"images": st.column_config.NumberColumn("training images"), "label": "nearest label"},
    )
with right:
    if len(sel):
        near = images_near(ex, sel["vocab_id"].to_numpy())
        st.markdown("**Images nearest to the selected phrases** (co-embedding cosine similarity under each)")
    else:
        near = [(r, float("nan")) for r in chosen_images[:12]]
        st.markdown("**Selected images**")
    for (row, sim), col in grid(near, 6):
        with col:
            caption = ", ".join(ws.items.at[row, "labels"]) or "—"
            image_tile(ws, row, f"map_open_{row}", caption if sim != sim else f"{sim:.2f} · {caption}", help=caption)
