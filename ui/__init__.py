"""The Streamlit app's shared code (outside ``views/``): cached loaders, widgets, the frame and URL state.

Only presentation lives here; every computation is a call into ``core``.
"""
