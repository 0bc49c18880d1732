"""Streamlit entry point: the router. Pages live in ``pages/``; all ML lives in ``core``."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Pixel Context", page_icon="🖼️", layout="wide")

# Sections leave room for the pages to come (semantic search, annotation, tag neighbourhoods).
pages = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
        st.Page("pages/explore.py", title="Explore", icon="🔎", url_path="explore"),
        st.Page("pages/try_image.py", title="Try an image", icon="📤", url_path="try"),
    ],
    "Models": [
        st.Page("pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
        st.Page("pages/zeroshot.py", title="Zero-shot", icon="🏷️", url_path="zeroshot"),
        st.Page("pages/prototype_map.py", title="Prototype map", icon="🗺️", url_path="map"),
    ],
}
st.navigation(pages).run()
