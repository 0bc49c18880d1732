"""The forward path is defined once: predicting a stored image reproduces what the fit stored, for every
model and every phrase source (tiny fits on a small real subset of the demo)."""

from __future__ import annotations

import numpy as np
import pytest

from core.forward import MODEL_INPUTS, ImageArrays, model_inputs, register_model_input
from tests.conftest import SMALL_LABELS, quick_fit, write_subset


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    return write_subset(tmp_path_factory.mktemp("tiny"), SMALL_LABELS[:4], per_label=10)


@pytest.fixture(scope="module")
def saved_generator(tmp_path_factory, tiny_dataset, cache_dir):
    from core.config import GeneratorConfig
    from core.corpus import fit_corpus_generator
    from core.progress import silent

    folder = tmp_path_factory.mktemp("gen") / "gen"
    fit_corpus_generator([tiny_dataset], folder, config=GeneratorConfig(epochs=3), cache_dir=cache_dir, progress=silent)
    return folder


CAPTIONS = {"caption_labels": "on", "label_fraction": 0.5}


@pytest.mark.parametrize("source", ["corpus", "imagenet", "corpus+imagenet", "saved generator", "corpus, caption models"])
def test_predict_reproduces_stored_probabilities(source, tiny_dataset, saved_generator, cache_dir, tmp_path):
    phrase_source = str(saved_generator) if source == "saved generator" else source.split(",")[0]
    extra = CAPTIONS if "caption" in source else {}
    ws = quick_fit(tiny_dataset, tmp_path / "ws", cache_dir, epochs=3, max_epochs=10, phrase_source=phrase_source, **extra)
    test = np.flatnonzero(ws.items["is_test"].to_numpy())
    assert len(test) >= 4
    preds = ws.predict(list(ws.items["path"].iloc[test]), top=len(ws.labels))
    expected = {"baseline", "multimodal", "text_only", "zeroshot"}
    if extra:
        expected |= {"baseline_captions", "multimodal_captions"}
    assert set(ws.predictions) == expected
    for pred, row in zip(preds, test):
        assert pred.ok
        assert [p for p, _ in pred.phrases] == [p for p, _ in ws.item_phrases(int(row))]
        for model, stored in ws.predictions.items():
            got = dict(pred.rankings[model])
            np.testing.assert_allclose([got[name] for name in ws.labels], stored[row], atol=2e-4, err_msg=f"{source}/{model}")


def test_stored_arrays_give_the_stored_probabilities(fitted_workspace):
    """Without re-embedding: the registry's inputs from the workspace's arrays reproduce every row."""
    from core.workspace import open_workspace

    ws = open_workspace(fitted_workspace)
    probs = ws.model_probabilities(ws.image_arrays, ws.coembedding)
    test = ws.items["is_test"].to_numpy()
    for model, stored in ws.predictions.items():
        np.testing.assert_allclose(probs[model][test], stored[test], atol=1e-5, err_msg=model)


def test_a_new_model_input_is_one_registry_entry():
    arrays = ImageArrays(visual=np.array([[3.0, 4.0]], dtype=np.float32), text_vectors=np.array([[1.0]], dtype=np.float32))
    register_model_input("baseline_twin", MODEL_INPUTS["baseline"])
    try:
        x = model_inputs(arrays, ["baseline_twin", "multimodal"])
        np.testing.assert_allclose(x["baseline_twin"], [[0.6, 0.8]], atol=1e-6)
        np.testing.assert_allclose(x["multimodal"], [[0.6, 0.8, 1.0]], atol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            register_model_input("baseline_twin", MODEL_INPUTS["text_only"])
        with pytest.raises(KeyError, match="no input registered"):
            model_inputs(arrays, ["nope"])
    finally:
        MODEL_INPUTS.pop("baseline_twin")
