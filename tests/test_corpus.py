"""A phrase generator fitted on other text, saved, and applied to a dataset."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SMALL_LABELS, quick_fit, write_subset


@pytest.fixture(scope="module")
def corpus_generator(tmp_path_factory, cache_dir, small_dataset):
    from core.corpus import fit_corpus_generator
    from core.phrases.generator import GeneratorConfig
    from core.progress import silent

    # a second collection, disjoint from the small dataset's images, with the same kinds of pictures
    other = write_subset(tmp_path_factory.mktemp("other"), SMALL_LABELS, per_label=30)
    folder = tmp_path_factory.mktemp("gen") / "gen"
    fit_corpus_generator([other, small_dataset], folder, config=GeneratorConfig(epochs=15), cache_dir=cache_dir, progress=silent)
    return folder


def test_saved_generator_is_applied_and_its_leaks_reported(corpus_generator, small_dataset, cache_dir, tmp_path):

    assert (corpus_generator / "corpus.safetensors").is_file()
    ws = quick_fit(small_dataset, tmp_path / "ws", cache_dir, max_epochs=30, phrase_source=str(corpus_generator))
    assert (ws.path / "generator" / "generator.json").is_file()
    # the corpus held the small dataset's training rows (not its test rows): each is reported
    leaks = [i for i in ws.issues if i.file == "phrase generator"]
    n_train = int((ws.items["split"] == "train").sum())
    assert len(leaks) == n_train and all("training image" in i.reason for i in leaks)
    assert ws.metrics["multimodal"]["top1"] > 1 / 6
    assert np.all(ws.items["fold"] == -1)


def test_backbone_mismatch_is_refused(corpus_generator, small_dataset, cache_dir, tmp_path):
    from core.pipeline import FitConfig, fit
    from core.progress import silent

    cfg = FitConfig(phrase_source=str(corpus_generator), generator_backbone="efficientnet-lite2", cache_dir=str(cache_dir))
    with pytest.raises(ValueError, match="reads 'efficientnet-lite0' features"):
        fit(small_dataset, tmp_path / "ws", cfg, progress=silent)


def test_unknown_phrase_source(small_dataset, tmp_path):
    from core.pipeline import FitConfig, fit

    with pytest.raises(ValueError, match="neither"):
        fit(small_dataset, tmp_path / "ws", FitConfig(phrase_source=str(tmp_path)))


def test_phrases_fit_refuses_a_folder_of_user_files(tmp_path, small_dataset):
    from core.corpus import fit_corpus_generator

    out = tmp_path / "mine"
    out.mkdir()
    (out / "vocab.json").write_text("my own notes")
    with pytest.raises(ValueError, match="not a saved phrase generator"):
        fit_corpus_generator([small_dataset], out)
    assert [p.name for p in out.iterdir()] == ["vocab.json"] and (out / "vocab.json").read_text() == "my own notes"


def test_saving_over_a_saved_generator_replaces_only_its_files(corpus_generator, tmp_path):
    import shutil

    from core.phrases.generator import PhraseGenerator

    folder = tmp_path / "gen"
    shutil.copytree(corpus_generator, folder)
    (folder / "vocab.json").write_text("{}")  # what a generator saved before vocab.arrow had
    PhraseGenerator.load(corpus_generator).save(folder)
    assert not (folder / "vocab.json").exists() and (folder / "vocab.arrow").is_file()
    elsewhere = tmp_path / "new"
    elsewhere.mkdir()
    (elsewhere / "vocab.json").write_text("a user's file")  # no generator.json: not a folder the product saved
    PhraseGenerator.load(corpus_generator).save(elsewhere)
    assert (elsewhere / "vocab.json").read_text() == "a user's file"
