"""Streamlit entry point: the router. Pages live in ``pages/``; all ML lives in ``core``."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Pixel Context", page_icon=":material/image_search:", layout="wide")

# Pages grouped by what a user does: explore the data, compare models, label.
pages = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/explore.py", title="Explore", icon=":material/photo_library:", url_path="explore"),
        st.Page("pages/try_image.py", title="Try an image", icon=":material/upload:", url_path="try"),
        st.Page("pages/search.py", title="Semantic search", icon=":material/image_search:", url_path="search"),
    ],
    "Models": [
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
        st.Page("pages/zeroshot.py", title="Zero-shot", icon=":material/label:", url_path="zeroshot"),
        st.Page("pages/prototype_map.py", title="Prototype map", icon=":material/scatter_plot:", url_path="map"),
    ],
    "Label": [
        st.Page("pages/annotate.py", title="Annotate", icon=":material/edit_note:", url_path="annotate"),
        st.Page("pages/neighbours.py", title="Tag neighbours", icon=":material/hub:", url_path="neighbours"),
    ],
}
st.navigation(pages).run()
