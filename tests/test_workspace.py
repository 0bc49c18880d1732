"""Reading a workspace memory-mapped gives exactly what reading it whole gave: items, arrays,
predictions, and every Explorer answer built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from core.explore import Explorer, GalleryFilter
from core.workspace import Workspace, WorkspaceError, open_workspace


@pytest.fixture(scope="module")
def both(fitted_workspace) -> tuple[Workspace, Workspace]:
    """The workspace opened as the product does (memory-mapped), and one given the arrays read
    whole by safetensors' own loader and the items by pandas (how versions before 1M read them)."""
    mapped, whole = open_workspace(fitted_workspace), open_workspace(fitted_workspace)
    items = pd.read_parquet(fitted_workspace / "items.parquet")
    for col in ("labels", "tags"):
        items[col] = items[col].map(list)
    whole.__dict__["_items"] = items
    whole.__dict__["_arrays"] = load_file(str(fitted_workspace / "arrays.safetensors"))
    whole.__dict__["_predictions"] = load_file(str(fitted_workspace / "predictions.safetensors"))
    return mapped, whole


def test_items_arrays_and_predictions_are_the_same(both):
    mapped, whole = both
    pd.testing.assert_frame_equal(mapped.items, whole.items)
    assert all(isinstance(v, list) for col in ("labels", "tags") for v in mapped.items[col])
    for name in ("arrays", "predictions"):
        a, b = getattr(mapped, name), getattr(whole, name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
            assert not a[k].flags.writeable  # nothing downstream may write into the workspace's arrays


def test_explorer_answers_are_the_same(both):
    mapped, whole = (Explorer(w) for w in both)
    np.testing.assert_array_equal(mapped.truth, whole.truth)
    phrase = mapped.ws.item_phrases(0, 1)[0][0]
    filters = [
        GalleryFilter(),
        GalleryFilter(split="test", change="fixed"),
        GalleryFilter(model="baseline", correct=False),
        GalleryFilter(true_labels=["food/fruit", "animals/birds"], confidence=(0.3, 0.9)),
        GalleryFilter(phrase=phrase),
    ]
    for f in filters:
        np.testing.assert_array_equal(mapped.filter(f), whole.filter(f))
    for row in (0, 7, mapped.n - 1):
        assert mapped.prediction(row) == whole.prediction(row)
        assert mapped.neighbours(row, k=5) == whole.neighbours(row, k=5)
        item = str(mapped.ws.items.at[row, "item"])
        assert mapped.row_of(item) == whole.row_of(item) == row
    assert mapped.row_of("no such item") is None
    labels = [(n, []) for n in mapped.labels[:3]]
    rows = np.arange(0, mapped.n, 3)
    np.testing.assert_allclose(mapped.ws.zeroshot_rows(labels, rows), whole.ws.zeroshot_rows(labels, rows), rtol=1e-6)


def test_a_truncated_array_file_names_the_file(fitted_workspace, tmp_path):
    import shutil

    ws_dir = shutil.copytree(fitted_workspace, tmp_path / "ws")
    path = ws_dir / "arrays.safetensors"
    path.write_bytes(path.read_bytes()[:-1000])
    ws = open_workspace(ws_dir)
    with pytest.raises(WorkspaceError, match=r"arrays\.safetensors is damaged.*truncated"):
        _ = ws.visual


def test_label_lists_read_from_parquet_as_lists(tmp_path):
    from core.workspace import _read_items

    df = pd.DataFrame(
        {
            "item": ["a", "b", "c", "d", "e"],
            "labels": [["x"], ["x", "y"], [], [""], ["x"]],
            "tags": [[], [], [], [], []],  # every list empty: parquet stores list<null>
            "split": ["train"] * 5,
        }
    )
    df.to_parquet(tmp_path / "items.parquet", index=False)
    got = _read_items(tmp_path / "items.parquet")
    assert list(got.columns) == list(df.columns)
    assert got["labels"].tolist() == [["x"], ["x", "y"], [], [""], ["x"]]  # [] and [""] stay apart
    assert got["tags"].tolist() == [[]] * 5
    assert got.at[0, "labels"] is got.at[4, "labels"]  # one list per distinct value
    df.loc[1, "labels"] = None
    df.to_parquet(tmp_path / "items.parquet", index=False)
    with pytest.raises(ValueError, match="missing lists"):
        _read_items(tmp_path / "items.parquet")
