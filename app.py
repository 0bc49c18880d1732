"""Streamlit entry point: the frame every page shares (workspace picker, fit form, background fits)
and the router. Pages live in ``views/``, their shared code in ``ui/``; all ML lives in ``core``.

(Not in ``pages/``: Streamlit treats that folder as an old-style multipage app until the first
``st.navigation`` call, so a fresh server whose first request was a page link ran that page's file
alone, without this frame, for every session after it.)"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import frame, state

ICON = Path(__file__).resolve().parent / "assets" / "favicon.png"  # local: the app fetches nothing from the internet
st.set_page_config(page_title="Pixel Context", page_icon=str(ICON), layout="wide")

# Pages grouped by what a user does: explore the data, compare models, label.
pages = {
    "Explore": [
        st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("views/explore.py", title="Explore", icon=":material/photo_library:", url_path="explore"),
        st.Page("views/try_image.py", title="Try an image", icon=":material/upload:", url_path="try"),
        st.Page("views/search.py", title="Semantic search", icon=":material/image_search:", url_path="search"),
    ],
    "Models": [
        st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
        st.Page("views/zeroshot.py", title="Zero-shot", icon=":material/label:", url_path="zeroshot"),
        st.Page("views/prototype_map.py", title="Prototype map", icon=":material/scatter_plot:", url_path="map"),
    ],
    "Label": [
        st.Page("views/annotate.py", title="Annotate", icon=":material/edit_note:", url_path="annotate"),
        st.Page("views/neighbours.py", title="Tag neighbours", icon=":material/hub:", url_path="neighbours"),
    ],
}
# Labels are never cut: button captions wrap instead of ending in "…".
st.html(
    "<style>[data-testid='stButton'] button p, [data-testid='stButton'] button div "
    "{white-space: normal !important; overflow-wrap: break-word; text-overflow: clip !important;}</style>"
)
page = st.navigation(pages)
state.clean_url(page.url_path)  # one page's query parameters never leak into another's URL
if frame.draw():
    page.run()
