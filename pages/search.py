"""Search: semantic image retrieval by image, text, or image + text, beside the raw-feature ranking."""

from __future__ import annotations

import streamlit as st

from core.retrieval.semantic import has_retrieval
from pages.common import offer_fit, open_item, page_workspace, retrieval_for

K = 12

ws = page_workspace()
st.title("Semantic search")
st.caption(
    "An embedding trained so that images whose texts say similar things lie close (Gordo & Larlus, 2017): the "
    'database holds images only; a query is an image, a text, or an image moved by a text ("+ wedding").'
)
if not has_retrieval(ws):
    from core.retrieval.semantic import fit_retrieval

    offer_fit(
        "semantic embedding", "about two minutes", "Fit semantic retrieval", "search_fit", lambda **kw: fit_retrieval(ws, **kw)
    )

search = retrieval_for(ws)
ev = search.evaluation
with st.expander("How good is it? (test split, tf-idf of the texts as ground truth)"):
    st.dataframe(
        {m: {"NDCG AUC": ev[m]["ndcg_auc"], "PCC AUC": ev[m]["pcc_auc"]} for m in ev if isinstance(ev[m], dict)},
        width="stretch",
    )

mode = st.radio("Query by", ["A dataset image", "An uploaded image", "Text only"], horizontal=True, key="search_mode")
features, exclude, shown = None, None, None
if mode == "A dataset image":
    items = list(ws.items["item"].astype(str))
    item = st.selectbox("Image", items, index=0, key="search_item")
    exclude = items.index(item)
    features = ws.visual[exclude]
    shown = ws.items.at[exclude, "path"]
elif mode == "An uploaded image":
    up = st.file_uploader("Image", key="search_upload")
    if up is not None:
        feats, _, errors = ws.embed([up.getvalue()])
        if errors:
            st.error(f"{up.name}: {errors[0]}")
            st.stop()
        features, shown = feats[0], up.getvalue()
text = st.text_input(
    "Text" if mode == "Text only" else "Modifier text (optional, e.g. 'wedding')", key="search_text", placeholder="e.g. christmas"
)
weight = 1.0
if features is not None and text.strip():
    weight = st.slider("How far the text moves the image query", 0.0, 4.0, 1.0, 0.25, key="search_weight")
if features is None and not text.strip():
    st.info("Choose an image or type a text.")
    st.stop()
try:
    hits = search.search(features=features, text=text, text_weight=weight, k=K, exclude=exclude)
except ValueError as exc:
    st.warning(str(exc))
    st.stop()

if shown is not None:
    st.image(shown, width=160, caption="query" + (f" + “{text.strip()}”" if text.strip() else ""))


def gallery(results: list[tuple[int, float]], key: str) -> None:
    grid = st.columns(4)
    for n, (row, score) in enumerate(results):
        with grid[n % 4]:
            st.image(ws.items.at[row, "path"], width="stretch")
            label = ", ".join(ws.items.at[row, "labels"]) or "—"
            if st.button(f"{score:.2f} · {label}", key=f"{key}_{row}", width="stretch", help=ws.items.at[row, "text"]):
                open_item(str(ws.items.at[row, "item"]))


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
