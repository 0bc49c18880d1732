"""Which items a labeler reviewed (their label counts as a training label on refit and retrain)."""

from __future__ import annotations

from core.labels.session import reviewed_items
from core.labels.store import LabelStore

ITEMS = {f"img/{i}.png": ["cat" if i % 2 else "dog"] for i in range(6)}


def test_reviewed_items_follow_undo_chains_and_never_count_an_unsure_mark(tmp_path):
    store = LabelStore(str(tmp_path / "labels.sqlite"), namespace="t", items=ITEMS, taxonomy=["cat", "dog"])
    store.set_labels("img/0.png", ["cat"], user="ann")  # set: reviewed
    undone = store.set_labels("img/1.png", ["dog"], user="ann")
    store.undo(undone.id, user="ann")  # set, undone: not reviewed
    redone = store.set_labels("img/2.png", ["dog"], user="ann")
    u = store.undo(redone.id, user="ann")
    store.undo(u.id, user="ann")  # set, undone, put back: reviewed
    thrice = store.set_labels("img/3.png", ["dog"], user="ann")
    u1 = store.undo(thrice.id, user="ann")
    u2 = store.undo(u1.id, user="ann")
    store.undo(u2.id, user="ann")  # set, undone, put back, undone again: not reviewed
    unsure = store.mark_unsure("img/4.png", user="ann")
    v = store.undo(unsure.id, user="ann")
    store.undo(v.id, user="ann")  # "not sure", undone, put back: still no label of the labeler's
    assert reviewed_items(store) == {"img/0.png", "img/2.png"}
