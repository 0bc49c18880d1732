"""Which reviewed images a retrain trains on: a labeler's change in effect, never an undone one."""

from __future__ import annotations

from core.labels.retrain import retrain
from core.labels.session import open_label_store
from core.workspace import open_workspace
from tests.conftest import copy_with_labels_aside


def test_retrain_trains_on_reviewed_images_but_not_on_undone_ones(fitted_workspace, tmp_path):
    """On a workspace fitted with a share of the labels (the 10% demo), a training image whose label
    was kept aside becomes labelled when a labeler sets its label; not when that change was undone
    (the Annotate page already says an undone change un-reviews its image), and again when the undo
    itself is undone."""
    ws_path = tmp_path / "ws"
    aside = copy_with_labels_aside(fitted_workspace, ws_path, 3)
    ws = open_workspace(ws_path)
    store = open_label_store(ws)
    kept, undone, redone = (str(ws.items.at[r, "item"]) for r in aside)
    for item in (kept, undone, redone):
        store.set_labels(item, list(ws.items.at[ws.row_of(item), "labels"]), user="ann")
    store.undo(store.history(undone)[-1].id, user="ann")
    store.undo(store.undo(store.history(redone)[-1].id, user="ann").id, user="ann")
    report = retrain(ws, store)
    after = open_workspace(ws_path)
    assert report.n_labelled == int(ws.items["labelled"].sum()) + 2
    assert [bool(after.items.at[after.row_of(i), "labelled"]) for i in (kept, undone, redone)] == [True, False, True]
