"""Streamlit entry point: the router. Pages live in ``pages/``; all ML lives in ``core``."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Pixel Context", page_icon="🖼️", layout="wide")

pages = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    ],
}
st.navigation(pages).run()
