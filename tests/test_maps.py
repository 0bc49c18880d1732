"""The prototype map's tables, sampling and selection on a real fitted workspace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.explore import Explorer
from core.maps import display_sample, has_map, image_table, images_near, prototype_table
from core.workspace import open_workspace


@pytest.fixture(scope="module")
def ex(fitted_workspace) -> Explorer:
    return Explorer(open_workspace(fitted_workspace))


def test_prototype_table(ex):
    assert has_map(ex)
    protos = prototype_table(ex)
    gen = ex.ws.generator
    assert len(protos) == len(ex.ws.maps.prototype_ids)
    assert set(protos["label"]) <= set(ex.labels)
    row = protos.iloc[0]
    assert row["phrase"] == gen.vocab.phrases[row["vocab_id"]] and row["images"] == gen.vocab.counts[row["vocab_id"]]
    assert len(image_table(ex)) == len(ex.ws.items)


def test_nearest_label_of_a_label_phrase_is_that_label(ex):
    protos = prototype_table(ex).set_index("phrase")
    # "bird"-like phrases sit nearest the birds' images
    birds = [p for p in protos.index if p in ("bird", "birds")]
    assert birds and all(protos.at[p, "label"] == "animals/birds" for p in birds)


def test_display_sample_caps_points():
    df = pd.DataFrame({"x": np.arange(1000)})
    same, sampled = display_sample(df, max_points=2000)
    assert not sampled and len(same) == 1000
    small, sampled = display_sample(df, max_points=100)
    assert sampled and len(small) == 100 and small.index.is_monotonic_increasing


def test_images_near_a_phrase_carry_it(ex):
    protos = prototype_table(ex)
    top = protos.sort_values("images", ascending=False).iloc[0]
    near = images_near(ex, np.array([top["vocab_id"]]), k=5)
    assert len(near) == 5 and [s for _, s in near] == sorted((s for _, s in near), reverse=True)
    assert images_near(ex, np.array([], dtype=np.int64)) == []
