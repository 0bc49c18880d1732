"""Try an image: upload images (or pick a test image) and see the pipeline's answer computed live."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.frame import workspace
from ui.loaders import explorer_for, predict_upload
from ui.safe_text import md
from ui.widgets import item_picker, render_detail

MAX_FILES = 12

ws = workspace()
ex = explorer_for(ws)
st.title("Try an image")
st.caption(
    "The whole pipeline runs live on your image: backbone → phrase generator → top-3 phrase text vector → "
    f"classifiers and zero-shot. Up to {MAX_FILES} images at a time; "
    f"files up to {st.get_option('server.maxUploadSize')} MB; very large images are refused."
)

uploads = st.file_uploader("Images", accept_multiple_files=True, key="try_upload")
test = ws.items["is_test"].to_numpy()
sample = item_picker(
    "…or run a test image through the live pipeline", ws.items.loc[test, "item"], "try_sample", ex.row_of, optional=True
)

inputs: list[tuple[str, bytes]] = [(u.name, u.getvalue()) for u in (uploads or [])][:MAX_FILES]
if uploads and len(uploads) > MAX_FILES:
    st.warning(f"Showing the first {MAX_FILES} of {len(uploads)} images.")
if sample is not None:
    inputs.append((str(ws.items.at[sample, "item"]), Path(ws.items.at[sample, "path"]).read_bytes()))

if not inputs:
    st.info("Upload a photo or a drawing, or pick a test image.")
for n, (name, data) in enumerate(inputs):
    result = predict_upload(ws, data, name)
    with st.container(border=True):
        if result.ok:
            row = ex.row_of(name)
            truth = ex.true_labels(row) if row is not None else None
            render_detail(ex, result, data, truth, ex.neighbours(result.features), key=f"try_{n}")
        else:
            st.error(f"Could not use this file. {md(result.image)}: {md(result.error)}")
