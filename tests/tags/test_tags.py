"""Tag neighbourhoods: distances, neighbourhood sampling, the models, vocabulary change, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main as cli
from core.metrics import evaluate
from core.tags.annotate import open_tag_models, tag_neighbours, tag_vectors
from core.tags.models import sample_neighbourhoods
from core.tags.neighbours import binary_tags, nearest, normalize_tags
from core.vectors import l2n
from core.workspace import open_workspace


def test_jaccard_neighbours_and_self_exclusion():
    tags = [["a", "b"], ["a", "b"], ["a", "c"], ["d"]]
    b = binary_tags(tags, ["a", "b", "c", "d"])
    ids, dist = nearest(b, b, 2, metric="jaccard", self_index=np.arange(4))
    assert ids[0, 0] == 1 and dist[0, 0] == pytest.approx(0.0)
    assert ids[0, 1] == 2 and dist[0, 1] == pytest.approx(1 - 1 / 3)
    assert (ids != np.arange(4)[:, None]).all()


def test_sampled_neighbourhoods_keep_distance_order():
    hood = np.tile(np.arange(10, 34), (50, 1))
    s = sample_neighbourhoods(hood, 6, 12, np.random.default_rng(0))
    assert s.shape == (50, 6) and (np.diff(s, axis=1) > 0).all() and s.max() < 22
    assert len({tuple(r) for r in s}) > 1


def test_ltwin_beats_visual_only(extended_workspace):
    tn = open_tag_models(open_workspace(extended_workspace))
    ev = tn.meta["evaluation"]
    assert set(ev["settings"]) == {"3,6", "6,12"}
    assert ev["ltwin"]["mAP"] > ev["visual_only"]["mAP"]
    preds = tn.predict(0)
    assert set(preds) == {"visual_only", "ltn", "ltwin"} and len(preds["ltwin"]) == 3
    hood = tn.neighbourhood(int(np.flatnonzero(tn.ws.items["is_test"].to_numpy())[0]), 3)
    assert all(tn.ws.items.at[r, "split"] != "test" for r, _ in hood)  # neighbours come from training images
    assert [d for _, d in hood] == sorted(d for _, d in hood)


def test_one_image_prediction_reads_its_neighbourhood_only_and_matches_every_row(extended_workspace):
    from core.vectors import l2n

    tn = open_tag_models(open_workspace(extended_workspace))
    visual = l2n(tn.ws.visual)
    for row in (0, 5, len(visual) - 1):
        for kind, ranked in tn.predict(row, top=len(tn.ws.labels)).items():
            full = tn.models[kind].predict_proba(visual, np.asarray(tn.vectors), tn.ids, np.array([row]))[0]
            assert [lab for lab, _ in ranked] == [tn.ws.labels[j] for j in np.argsort(-full)]
            np.testing.assert_allclose([p for _, p in ranked], np.sort(full)[::-1], rtol=1e-5, atol=1e-7)


SYNONYMS = {
    "bird": "avian creature", "birds": "feathered animals", "flower": "blossom", "flowers": "blossoms",
    "fruit": "produce", "apple": "pome", "music": "melody", "guitar": "six-string", "car": "automobile",
    "vehicle": "automobile", "weapon": "armament", "weapons": "armaments", "gun": "firearm", "sword": "blade",
    "animal": "creature", "plant": "vegetation", "tree": "oak", "food": "meal", "instrument": "musical device",
}  # fmt: skip


def test_embedded_tags_survive_a_vocabulary_change(extended_workspace):
    """Test tags renamed to unseen synonyms: the model on embedded tags keeps most of its quality."""
    ws = open_workspace(extended_workspace)
    tn = open_tag_models(ws)
    tags = [normalize_tags(t) for t in ws.items["tags"]]
    test = np.flatnonzero(ws.items["is_test"].to_numpy())
    train_vocab = {t for i in np.flatnonzero(~ws.items["is_test"].to_numpy()) for t in tags[i]}
    renamed = list(tags)
    n_renamed = 0
    for i in test:
        new = [SYNONYMS.get(t, t) for t in tags[i]]
        n_renamed += sum(a != b for a, b in zip(tags[i], new, strict=True))
        renamed[i] = new
    assert n_renamed >= len(test)  # the renaming touches every test image on average
    assert any(t not in train_vocab for i in test for t in renamed[i])
    vectors = tag_vectors(ws, renamed)
    ids, _ = tag_neighbours(ws, renamed, vectors, metric="embedding", big_m=tn.ids.shape[1])
    visual = l2n(ws.visual)
    truth = np.zeros((len(test), len(ws.labels)), dtype=np.float32)
    for n, i in enumerate(test):
        truth[n, ws.labels.index(ws.items.at[i, "labels"][0])] = 1
    model = tn.models["ltwin"]
    before = evaluate(truth, model.predict_proba(visual, tn.vectors, tn.ids, test), multilabel=True)["mAP"]
    after = evaluate(truth, model.predict_proba(visual, vectors, ids, test), multilabel=True)["mAP"]
    visual_only = tn.meta["evaluation"]["visual_only"]["mAP"]
    assert after > visual_only and after >= 0.8 * before


def test_tags_cli(extended_workspace, capsys):
    assert cli(["tags", "evaluate", "--workspace", str(extended_workspace), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    for key in ("visual_only", "ltn", "ltwin"):
        assert {"mAP_lab", "mAP_img"} <= set(ev[key])


def test_no_tags_is_a_clear_error(tmp_path, small_dataset, cache_dir):
    import shutil

    from core.tags.annotate import fit_tag_models
    from tests.conftest import edit_manifest, quick_fit

    data = tmp_path / "notags"
    shutil.copytree(small_dataset, data)
    edit_manifest(data, tags="")
    ws = quick_fit(data, tmp_path / "ws", cache_dir, epochs=2, max_epochs=5)
    with pytest.raises(ValueError, match="no tags"):
        fit_tag_models(ws)


def test_lstm_pooling_trains_and_uses_neighbour_order():
    """RTN / LTwin+RNN: an LSTM over the ordered neighbours; unlike max pooling it sees their order."""
    import torch

    from core.tags.models import TagModel, TagModelConfig, TagNet

    rng = np.random.default_rng(0)
    n, d = 120, 16
    y = rng.integers(0, 3, n)
    visual = (np.eye(3)[y] @ rng.standard_normal((3, d)) + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    tags = np.eye(3, dtype=np.float32)[y]
    hood = np.stack([rng.permutation(np.flatnonzero(y == y[i]))[:8] for i in range(n)])
    cfg = TagModelConfig(kind="ltwin", m=4, big_m=8, pool="lstm", hidden=32, epochs=15, samples=3)
    model = TagModel.fit(visual, tags, hood, np.arange(n), y, 3, False, cfg)
    p = model.predict_proba(visual, tags, hood, np.arange(n))
    assert p.shape == (n, 3) and (p.argmax(1) == y).mean() > 0.8
    net = TagNet(d, 3, 3, cfg).eval()
    z = torch.randn(2, 4, d)
    tz = torch.randn(2, 4, 3)
    x, tx = torch.randn(2, d), torch.randn(2, 3)
    assert not torch.allclose(net(x, z, tx, tz), net(x, z.flip(1), tx, tz.flip(1)))
