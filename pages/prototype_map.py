"""Prototype map: the UMAP of phrase prototypes (and images) in the phrase generator's co-embedding."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.maps import MAX_POINTS, display_sample, has_map, image_table, images_near, prototype_table
from pages.common import explorer_for, open_item, page_workspace
from pages.safe_text import md_join

PROTOTYPE, IMAGE = 0, 1

ws = page_workspace()
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
    "by UMAP with the images. Hover a point for its phrase; select points (click, box or lasso) to list them and "
    "see the images nearest to them."
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
hover = "%{hovertext}<br>%{customdata[2]} images<extra></extra>"
if colour == "Nearest label":  # one trace per label: the legend names the colours
    palette = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
    for i, (label, group) in enumerate(shown.groupby("label", sort=True)):
        fig.add_trace(
            go.Scattergl(
                x=group["x"],
                y=group["y"],
                mode="markers",
                name=label,
                hovertext=group["phrase"] + " · " + label,
                marker=dict(size=5, color=palette[i % len(palette)], opacity=0.8),
                hovertemplate=hover,
                customdata=group[["vocab_id"]].assign(kind=PROTOTYPE, images=group["images"]).to_numpy(),
            )
        )
else:
    fig.add_trace(
        go.Scattergl(
            x=shown["x"],
            y=shown["y"],
            mode="markers",
            name="prototypes",
            hovertext=shown["phrase"] + " · " + shown["label"],
            marker=dict(
                size=5,
                color=shown["images"],
                colorscale="Viridis",
                cmin=1,
                opacity=0.8,
                cmax=max(int(shown["images"].quantile(0.99)), 2),
                colorbar=dict(title="images"),
            ),
            customdata=shown[["vocab_id"]].assign(kind=PROTOTYPE, images=shown["images"]).to_numpy(),
            hovertemplate=hover,
        )
    )
if show_images:
    img_shown, img_sampled = display_sample(images)
    sampled |= img_sampled
    fig.add_trace(
        go.Scattergl(
            x=img_shown["x"],
            y=img_shown["y"],
            mode="markers",
            name="images",
            marker=dict(size=4, color="#94a3b8", symbol="diamond", opacity=0.5),
            hovertext=img_shown["label"],
            customdata=img_shown[["row"]].assign(kind=IMAGE, n=1).to_numpy(),
            hovertemplate="image · %{hovertext}<extra></extra>",
        )
    )
highlight = ex.matching_phrase_ids(query) if query.strip() else None
if highlight is not None:
    hit = shown[shown["vocab_id"].isin(highlight)]
    fig.add_trace(
        go.Scattergl(
            x=hit["x"],
            y=hit["y"],
            mode="markers+text",
            text=hit["phrase"],
            textposition="top center",
            name="matches",
            marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color="#dc2626", width=2)),
            customdata=hit[["vocab_id"]].assign(kind=PROTOTYPE, images=hit["images"]).to_numpy(),
            hovertemplate=hover,
            hovertext=hit["phrase"],
        )
    )
fig.update_layout(
    height=640,
    margin=dict(l=0, r=0, t=10, b=0),
    dragmode="lasso",
    showlegend=colour == "Nearest label" or show_images,
    xaxis=dict(visible=False),
    yaxis=dict(visible=False),
)
event = st.plotly_chart(fig, width="stretch", key="map_chart", on_select="rerun", selection_mode=("points", "box", "lasso"))
if sampled:
    st.caption(
        f"Above {MAX_POINTS:,} points per layer the map draws a random sample of {MAX_POINTS:,} (seeded); selections "
        "and searches still cover every prototype."
    )
st.caption(f"{len(protos):,} prototypes, {len(images):,} images.")

points = (event.selection.points if event and event.selection else []) or []
chosen = [int(p["customdata"][0]) for p in points if p.get("customdata") and int(p["customdata"][1]) == PROTOTYPE]
chosen_images = [int(p["customdata"][0]) for p in points if p.get("customdata") and int(p["customdata"][1]) == IMAGE]
if not chosen and highlight is not None:
    chosen = list(highlight)
if not chosen and not chosen_images:
    st.info("Select points on the map, or type a phrase above, to see the phrases and the images nearest to them.")
    st.stop()

left, right = st.columns([1, 2])
with left:
    sel = protos[protos["vocab_id"].isin(chosen)].sort_values("images", ascending=False)
    st.markdown(f"**{len(sel)} phrases selected**")
    st.dataframe(sel[["phrase", "images", "label"]], hide_index=True, width="stretch", height=420)
with right:
    near = images_near(ex, sel["vocab_id"].to_numpy()) if len(sel) else [(r, float("nan")) for r in chosen_images[:12]]
    st.markdown("**Images nearest to the selection** (co-embedding cosine)" if len(sel) else "**Selected images**")
    grid = st.columns(6)
    for n, (row, sim) in enumerate(near):
        with grid[n % 6]:
            st.image(ws.items.at[row, "path"], width="stretch")
            caption = md_join(ws.items.at[row, "labels"])
            if st.button(caption if sim != sim else f"{caption} · {sim:.2f}", key=f"map_open_{row}", width="stretch"):
                open_item(str(ws.items.at[row, "item"]))
