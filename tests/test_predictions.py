"""Bring your own predictions: validated, stored in the workspace, shown as a model, driving the queue."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from core.cli import main as cli
from core.explore import Explorer, GalleryFilter
from core.labels.queue import review_queue
from core.predictions import PredictionsError, attach, attached_metrics, attached_names, load_attached
from core.workspace import open_workspace


@pytest.fixture
def ws_copy(fitted_workspace, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(fitted_workspace, dest)
    return open_workspace(dest)


def _table(ws, proba: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(proba, columns=ws.labels).assign(item=ws.items["item"].astype(str).to_numpy())[["item", *ws.labels]]


def test_attach_parquet_shows_up_as_a_model_and_drives_the_queue(ws_copy, tmp_path):
    ws = ws_copy
    proba = ws.predictions["baseline"][:, ::-1].copy()  # a model that is confidently wrong: another label order
    proba /= proba.sum(1, keepdims=True)
    shuffled = _table(ws, proba).sample(frac=1.0, random_state=0)[["item", *reversed(ws.labels)]]  # any row/column order
    shuffled.to_parquet(tmp_path / "mine.parquet", index=False)
    att = attach(ws, tmp_path / "mine.parquet", "mine")
    np.testing.assert_allclose(att.proba, proba, atol=1e-6)
    assert (ws.path / "predictions" / "mine.parquet").is_file() and attached_names(ws) == ["mine"]
    ex = Explorer(open_workspace(ws.path))
    assert "mine" in ex.models and list(ex.top["mine"]) == list(proba.argmax(1))
    assert len(ex.filter(GalleryFilter(model="mine", correct=True))) == int(ex.correct["mine"][ex.has_truth].sum())
    assert set(attached_metrics(ws)["mine"]) == set(ws.metrics["baseline"])
    queue = review_queue(ws, "label_errors", source="predictions:mine")
    assert queue and all(q.reason.endswith("(mine out-of-fold)") for q in queue)
    assert all(q.suggestion == [ws.labels[int(proba[q.row].argmax())]] for q in queue)


def test_top_label_and_score_csv(ws_copy, tmp_path):
    ws = ws_copy
    top = ws.predictions["multimodal"].argmax(1)
    pd.DataFrame({"item": ws.items["item"], "label": [ws.labels[j] for j in top], "score": 0.9}).to_csv(
        tmp_path / "top.csv", index=False
    )
    assert cli(["predictions", "attach", "--workspace", str(ws.path), str(tmp_path / "top.csv"), "--name", "top"]) == 0
    p = load_attached(ws, "top").proba
    assert list(p.argmax(1)) == list(top) and np.allclose(p.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t, ws: pd.concat([t, t.iloc[:1].assign(item="nope.webp")]), "not in the workspace"),
        (lambda t, ws: t.iloc[1:], "have no prediction"),
        (lambda t, ws: t.rename(columns={t.columns[1]: "zebra"}), "unknown: 'zebra'"),
        (lambda t, ws: t.assign(**{t.columns[1]: t[t.columns[1]] + 0.5}), "do not sum to 1"),
        (lambda t, ws: t.assign(**{t.columns[1]: -1.0}), "not probabilities"),
        (lambda t, ws: pd.concat([t, t.iloc[:1]]), "appear twice"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(ws_copy, tmp_path, change, message):
    ws = ws_copy
    table = change(_table(ws, ws.predictions["multimodal"]), ws)
    table.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PredictionsError, match=message):
        attach(ws, tmp_path / "bad.csv", "bad")
    assert attached_names(ws) == []


def test_bad_names_and_files(ws_copy, tmp_path):
    _table(ws_copy, ws_copy.predictions["multimodal"]).to_csv(tmp_path / "ok.csv", index=False)
    for name in ("baseline", "../x", ""):
        with pytest.raises(PredictionsError, match="name"):
            attach(ws_copy, tmp_path / "ok.csv", name)
    with pytest.raises(PredictionsError, match="not found"):
        attach(ws_copy, tmp_path / "missing.csv", "m")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(PredictionsError, match="use a "):
        attach(ws_copy, tmp_path / "p.txt", "m")
