"""Multi-label datasets (a ``labels`` column): sigmoid heads and the multi-label metrics."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, quick_fit


@pytest.fixture(scope="module")
def ml_workspace(small_dataset, cache_dir, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ml")
    with (small_dataset / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = tmp_path / "ml"
    data.mkdir()
    shutil.copytree(small_dataset / "images", data / "images")  # a link outside the folder would be refused
    with (data / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "labels", "text", "tags", "split"])
        w.writeheader()
        for r in rows:  # each image: its sub-category and its top-level category
            w.writerow(
                {
                    "image": r["image"],
                    "labels": f"{r['label']};{r['label'].split('/')[0]}",
                    "text": r["text"],
                    "tags": r["tags"],
                    "split": r["split"],
                }
            )
    return quick_fit(data, tmp_path / "ws", cache_dir, epochs=10, max_epochs=60)


def test_multilabel_fit_and_evaluate(ml_workspace):
    ws = ml_workspace
    assert ws.multilabel and len(ws.labels) == 12
    for model in ("baseline", "multimodal", "text_only", "zeroshot"):
        assert set(ws.metrics[model]) == {"mAP", "mAP_img", "precision_at_3", "recall_at_3"}
    assert ws.metrics["baseline"]["mAP"] > 0.5
    p = ws.predictions["multimodal"]
    assert not np.allclose(p.sum(1), 1)  # sigmoid, not softmax
    r = subprocess.run(
        [sys.executable, "-m", "core", "evaluate", "--workspace", str(ws.path), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "mAP" in json.loads(r.stdout)["multimodal"]


def test_multilabel_pages_and_label_sets(ml_workspace):
    """Compare shows PR curves, Annotate edits label sets, the map page explains its absence."""
    from core.labels.session import open_label_store

    def page(name: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["workspace_path"] = str(ml_workspace.path)
        at.run()  # st.navigation registers the pages (a custom url_path is unknown before)
        at.switch_page(f"views/{name}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    assert any("Precision–recall" in h.value for h in page("compare").subheader)
    page("explore")
    assert any("no prototype map" in i.value for i in page("prototype_map").info)
    at = page("annotate")
    at.selectbox(key="ann_strategy").set_value("margin").run()
    at.text_input(key="ann_user").set_value("ml").run()
    multi = next(m for m in at.multiselect if m.key.startswith("ann_multi_"))
    multi.set_value(["food", "food/fruit"]).run()
    at.button(key="ann_save_multi").click().run()
    assert not at.exception
    change = open_label_store(ml_workspace).history()[-1]
    assert change.new == ["food", "food/fruit"] and len(change.old) == 2
