"""The Streamlit app under streamlit.testing: pages render on a small fitted workspace."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def app(fitted_workspace) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["workspace_path"] = str(fitted_workspace)
    return at


def test_home_shows_dataset_and_metrics(app):
    app.run()
    assert not app.exception
    labels = [m.label for m in app.metric]
    assert "Images" in labels and any(label.startswith("Multimodal") for label in labels)
    assert any("Test-split metrics" in h.value for h in app.subheader)


def test_home_gallery_filter_changes_the_view(app):
    app.run()
    before = [c.value for c in app.caption]
    app.radio(key="home_show").set_value("Multimodal broke it").run()
    assert not app.exception
    assert [c.value for c in app.caption] != before


def test_demo_is_fitted_in_the_page_on_first_run(small_dataset, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXCTX_DEMO_DATA", str(small_dataset))
    monkeypatch.setenv("PIXCTX_DEMO_WORKSPACE", str(tmp_path / "demo-ws"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    assert not at.exception
    assert (tmp_path / "demo-ws" / "manifest.json").is_file()
    assert any(m.label == "Images" for m in at.metric)
