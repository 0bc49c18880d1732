"""Search: semantic image retrieval by image, text, or image + text, beside the raw-feature ranking."""

from __future__ import annotations

import streamlit as st

from core.retrieval.semantic import has_retrieval
from ui.frame import workspace
from ui.loaders import explorer_for, retrieval_for
from ui.safe_text import md
from ui.widgets import grid, image, image_tile, item_picker, model_name, offer_job

K = 12

ws = workspace()
st.title("Semantic search")
st.caption(
    "An embedding trained so that images whose texts say similar things lie close (Gordo & Larlus, 2017): the "
    'database holds images only; a query is an image, a text, or an image moved by a text ("+ wedding").'
)
if not has_retrieval(ws):
    offer_job(ws, "semantic embedding", "Fit semantic retrieval", "search_fit", ["retrieval", "fit"])

search = retrieval_for(ws)
ev = search.evaluation
with st.expander("How good is it? (test split, tf-idf of the texts as ground truth)"):
    st.dataframe(
        {model_name(m): {"NDCG AUC": ev[m]["ndcg_auc"], "PCC AUC": ev[m]["pcc_auc"]} for m in ev if isinstance(ev[m], dict)},
        width="stretch",
    )

mode = st.radio("Query by", ["A dataset image", "An uploaded image", "Text only"], horizontal=True, key="search_mode")
features, exclude, shown = None, None, None
if mode == "A dataset image":
    exclude = item_picker("Image", ws.items["item"], "search_item", explorer_for(ws).row_of)
    if exclude is None:
        st.stop()
    features = ws.visual[exclude]
    shown = ws.items.at[exclude, "path"]
elif mode == "An uploaded image":
    up = st.file_uploader("Image", key="search_upload")
    if up is not None:
        feats, _, errors = ws.embed([up.getvalue()])
        if errors:
            st.error(f"{md(up.name)}: {md(errors[0])}")
            st.stop()
        features, shown = feats[0], up.getvalue()
# one text box per mode: a text typed for a text-only query never turns into an image query's modifier
if mode == "Text only":
    text = st.text_input("Text", key="search_text", placeholder="e.g. christmas")
else:
    text = st.text_input("Modifier text (optional)", key="search_modifier", placeholder="e.g. wedding")
weight = 1.0
if features is not None and text.strip():
    weight = st.slider("How far the text moves the image query", 0.0, 4.0, 1.0, 0.25, key="search_weight")
if features is None and not text.strip():
    st.info("Choose an image or type a text.")
    st.stop()
try:
    hits = search.search(features=features, text=text, text_weight=weight, k=K, exclude=exclude)
except ValueError as exc:
    if features is None:
        st.warning(md(exc))
        st.stop()
    st.warning(f"{md(exc)} The image alone is searched.")  # a modifier the model cannot read does not block the image
    text = ""
    hits = search.search(features=features, text="", k=K, exclude=exclude)

if shown is not None:
    image(shown, caption="query" + (f" + “{md(text.strip())}”" if text.strip() else ""))


def gallery(results: list[tuple[int, float]], key: str) -> None:
    for (row, score), col in grid(results, 3):  # two galleries side by side: three tiles a row keep labels whole
        with col:
            label = ", ".join(ws.items.at[row, "labels"]) or "—"
            tip = f"similarity {score:.3f} · {ws.items.at[row, 'text']}"
            image_tile(ws, row, f"{key}_{row}", f"{score:.2f} · {label}", help=tip)


left, right = st.columns(2, gap="large")
with left:
    st.subheader("Semantic embedding")
    gallery(hits, "sem")
with right:
    st.subheader("Raw backbone features")
    if features is None:
        st.caption("Raw features cannot read text: a text query has no visual ranking to compare with.")
    else:
        gallery(search.raw_search(features, k=K, exclude=exclude), "raw")
