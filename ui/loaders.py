"""Cached loaders: one object per workspace (and fit), shared by every session of the app.

Streamlit shares ``st.cache_resource`` values between the sessions' threads, so what is cached here
must be thread-safe (``Workspace`` locks its lazy loaders).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.demo import demo_data_root
from core.explore import Explorer
from core.workspace import Prediction, Workspace, open_workspace


def _stamp(path: Path) -> tuple[str, float]:
    """The cache key of a workspace: its folder and the time of its last fit (``manifest.json``)."""
    return str(path), (path / "manifest.json").stat().st_mtime


@st.cache_resource(show_spinner=False)
def _workspace(path: str, mtime: float) -> Workspace:
    return open_workspace(path, data_root=demo_data_root(path))


def load_workspace(path: str | Path) -> Workspace:
    """One Workspace per folder and fit, shared by all sessions (a refit opens a new one)."""
    return _workspace(*_stamp(Path(path)))


@st.cache_resource(show_spinner=False)
def _explorer(path: str, mtime: float) -> Explorer:
    return Explorer(_workspace(path, mtime))


def explorer_for(ws: Workspace) -> Explorer:
    """The workspace's precomputed gallery views, shared by all sessions."""
    return _explorer(*_stamp(ws.path))


@st.cache_resource(show_spinner=False)
def _label_store(path: str, mtime: float, url: str):
    from core.labels.session import open_label_store

    return open_label_store(_workspace(path, mtime), url)


def label_store(ws: Workspace):
    """The workspace's label store (one engine per workspace and database, shared by sessions)."""
    from core.labels.session import label_db_url

    return _label_store(*_stamp(ws.path), str(label_db_url(ws)))


@st.cache_resource(show_spinner=False)
def _retrieval(path: str, mtime: float, fitted: float):
    from core.retrieval.semantic import open_retrieval

    return open_retrieval(_workspace(path, mtime))


def retrieval_for(ws: Workspace):
    """The workspace's semantic search (reloaded when it is refitted)."""
    from core.retrieval.semantic import FOLDER

    return _retrieval(*_stamp(ws.path), (ws.path / FOLDER / "config.json").stat().st_mtime)


@st.cache_resource(show_spinner=False)
def _tag_models(path: str, mtime: float, fitted: float, setting: tuple[int, int]):
    from core.tags.annotate import open_tag_models

    return open_tag_models(_workspace(path, mtime), setting)


def tag_models_for(ws: Workspace, setting: tuple[int, int]):
    """The workspace's tag-neighbourhood models of one (m, M) setting."""
    from core.tags.annotate import FOLDER

    return _tag_models(*_stamp(ws.path), (ws.path / FOLDER / "config.json").stat().st_mtime, setting)


@st.cache_data(max_entries=64, show_spinner="Running the pipeline on the image…")
def _predict(path: str, mtime: float, data: bytes, name: str) -> Prediction:
    return _workspace(path, mtime).predict([data], names=[name], top=10_000)[0]


def predict_upload(ws: Workspace, data: bytes, name: str) -> Prediction:
    """The whole pipeline on one uploaded image (cached by content); its ``error`` is set if unusable."""
    return _predict(*_stamp(ws.path), data, name)
