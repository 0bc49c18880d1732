"""Tag neighbours: an image's neighbourhood by user tags, and what visual-only, LTN and LTwin predict."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.tags.annotate import fitted_settings, has_tag_models
from ui.frame import workspace
from ui.loaders import explorer_for, tag_models_for
from ui.safe_text import md, md_join
from ui.widgets import grid, image, image_tile, item_picker, offer_job

KIND_NAMES = {"visual_only": "Visual only", "ltn": "LTN (neighbours' pixels)", "ltwin": "LTwin (+ tags)"}

ws = workspace()
st.title("Tag neighbours")
st.caption(
    "Images shared with user tags bring their own context: the images with the closest tags (embedded with "
    "sentence-transformers, so new words still work) form a neighbourhood, and LTN / LTwin classify an image "
    "from its pixels plus its neighbours' pixels (and tags) — Johnson et al. 2015; Tesan, Coscia & Ballan."
)
if not has_tag_models(ws):
    if not any(len(t) for t in ws.items["tags"]):
        st.info("This dataset has no tags, so there are no tag neighbourhoods.")
        st.stop()
    offer_job(ws, "tag-neighbourhood models", "Fit tag-neighbourhood models", "nb_fit", ["tags", "fit"])

ex = explorer_for(ws)
c1, c2 = st.columns([3, 1])
test = ws.items["is_test"].to_numpy()
with c1:
    row = item_picker("Image (test split)", ws.items.loc[test, "item"] if test.any() else ws.items["item"], "nb_item", ex.row_of)
if row is None:
    st.stop()
settings = fitted_settings(ws)
setting = c2.selectbox("(m, M)", settings, index=len(settings) - 1, format_func=lambda s: f"m={s[0]}, M={s[1]}", key="nb_setting")
tn = tag_models_for(ws, tuple(setting))

left, right = st.columns([1, 2], gap="large")
with left:
    image(ws.items.at[row, "path"])
    st.markdown("True label: " + md_join(ex.true_labels(row), empty="_none_"))
    st.markdown("Tags: " + md_join(ws.items.at[row, "tags"], empty="_none_"))
with right:
    preds = tn.predict(row)
    cols = st.columns(3)
    truth = set(ex.true_labels(row))
    for col, (kind, ranked) in zip(cols, preds.items(), strict=True):
        col.markdown(f"**{KIND_NAMES[kind]}**")
        col.markdown("  \n".join(f"{'✓' if lab in truth else '·'} {md(lab)} ({p:.2f})" for lab, p in ranked))
    ev = tn.meta["evaluation"]["settings"][f"{setting[0]},{setting[1]}"]
    st.dataframe(
        pd.DataFrame({KIND_NAMES[k]: {"mAP (labels)": v["mAP"], "mAP (images)": v["mAP_img"]} for k, v in ev.items()}).T,
        width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("mAP (labels)", "mAP (images)")},
    )
    st.caption("Test split, every model with the same neighbourhood setting.")

st.subheader(f"Its {setting[0]} nearest images by tags")
for (nb, dist), col in grid(tn.neighbourhood(row, setting[0]), 6):
    with col:
        image_tile(ws, nb, f"nb_open_{nb}", ", ".join(ws.items.at[nb, "labels"]) or "—")
        st.caption(f"tag distance {dist:.2f} · " + md_join(ws.items.at[nb, "tags"][:6], empty=""))
