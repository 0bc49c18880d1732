"""The workspace fit past many phrases: the zero-shot mapper and the prototype map on a seeded
sample above ``FitConfig.sample_above``, and only the phrases the images use embedded (tested with
the threshold lowered on the demo subset); unchanged below it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from core.explore import Explorer
from core.maps import map_sample, prototype_table
from core.phrases.combined import used_phrase_ids
from core.pipeline import map_prototype_ids
from core.text import PhraseVectors
from core.vectors import sample_rows
from core.workspace import open_workspace
from core.zeroshot import TextToCoEmbedding, fit_mapper
from tests.conftest import DEMO, SMALL_LABELS, demo_rows


class RowReads:
    """An array that records the rows read from it and refuses to be read whole (no ``__array__``)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.reads = array, []

    def __len__(self) -> int:
        return len(self.array)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __getitem__(self, rows):
        rows = np.asarray(rows)
        if rows.dtype == bool or rows.ndim != 1:
            raise AssertionError(f"read with a mask or a slice, not by row index: {rows!r}")
        self.reads.append(len(rows))
        return self.array[rows]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


@pytest.fixture(scope="module")
def ws(fitted_workspace):
    return open_workspace(fitted_workspace)


def test_sample_rows_is_seeded_uniform_and_sorted():
    assert np.array_equal(sample_rows(5, 10, 0), np.arange(5))
    a = sample_rows(40_000_000, 1000, 3)  # a few rows of 40M: drawn without a 40M permutation
    assert len(a) == len(np.unique(a)) == 1000 and (np.diff(a) > 0).all() and a.max() < 40_000_000
    assert np.array_equal(a, sample_rows(40_000_000, 1000, 3)) and not np.array_equal(a, sample_rows(40_000_000, 1000, 4))
    counts = np.bincount(sample_rows(1000, 500, 0) // 100, minlength=10)  # uniform: every tenth about half drawn
    assert counts.min() > 30 and counts.max() < 70


def test_mapper_below_the_threshold_is_the_fit_on_every_prototype(ws):
    gen = ws.generator
    emb = np.asarray(ws.phrase_embeddings[: len(gen.vocab)])
    has_proto = np.abs(gen.prototypes).sum(1) > 0
    assert has_proto.sum() > 0
    full = TextToCoEmbedding.fit(emb[has_proto], gen.prototypes[has_proto])  # the fit before the sample existed
    saved = ws.zeroshot_mapper  # the workspace's fit ran with the default threshold, far above its phrases
    assert ws.config.sample_above > len(gen.vocab)
    for mapper in (saved, fit_mapper(emb, gen.prototypes), fit_mapper(emb, gen.prototypes, sample_above=len(gen.vocab))):
        assert np.array_equal(mapper.weight, full.weight) and np.array_equal(mapper.bias, full.bias)


def test_mapper_above_the_threshold_reads_only_a_seeded_sample(ws):
    gen = ws.generator
    n = len(gen.vocab)
    size = n // 3
    emb, protos = RowReads(np.asarray(ws.phrase_embeddings[:n])), RowReads(gen.prototypes)
    mapper = fit_mapper(emb, protos, sample_above=size, seed=7)
    assert sum(protos.reads) == size and sum(emb.reads) <= size  # the text rows of the sample's non-zero prototypes
    rows = sample_rows(n, size, 7)
    keep = np.abs(gen.prototypes[rows]).sum(1) > 0
    own = TextToCoEmbedding.fit(np.asarray(ws.phrase_embeddings)[rows[keep]], gen.prototypes[rows[keep]])
    assert np.array_equal(mapper.weight, own.weight)
    again = fit_mapper(np.asarray(ws.phrase_embeddings[:n]), gen.prototypes, sample_above=size, seed=7)
    other = fit_mapper(np.asarray(ws.phrase_embeddings[:n]), gen.prototypes, sample_above=size, seed=8)
    assert np.array_equal(again.weight, mapper.weight) and not np.array_equal(other.weight, mapper.weight)
    # a map from a third of the phrases still places the other phrases near their own prototypes
    held = np.setdiff1d(np.flatnonzero(np.abs(gen.prototypes).sum(1) > 0), rows)
    cos = (mapper(np.asarray(ws.phrase_embeddings)[held]) * gen.prototypes[held]).sum(1)
    assert cos.mean() > 0.3


def test_map_prototype_ids_sample_above_the_threshold():
    ids = np.arange(0, 3000, 3)
    assert map_prototype_ids(ids, None, 0) is ids
    assert np.array_equal(map_prototype_ids(ids, 1000, 0), ids)
    s = map_prototype_ids(ids, 100, 5)
    assert len(s) == 100 and np.isin(s, ids).all() and (np.diff(s) > 0).all()
    assert np.array_equal(s, map_prototype_ids(ids, 100, 5)) and not np.array_equal(s, map_prototype_ids(ids, 100, 6))


def test_fit_below_the_threshold_maps_every_prototype(ws):
    assert np.array_equal(ws.maps.prototype_ids, ws.generator.output_ids)
    n = len(ws.generator.output_ids)
    assert ws.manifest["map_prototypes"] == {"mapped": n, "of": n}
    assert map_sample(Explorer(ws)) is None


@pytest.fixture(scope="module")
def sampled_workspace(fitted_workspace, small_dataset, tmp_path_factory):
    """The demo subset fitted again with the threshold at half its distinct prototypes: the phrase
    stage, features and phrase embeddings come from the caches, the map and the zero-shot mapper
    from a sample."""
    from core.pipeline import fit
    from core.progress import silent

    full = open_workspace(fitted_workspace)
    cfg = replace(full.config, sample_above=len(full.generator.output_ids) // 2)
    path = tmp_path_factory.mktemp("sampled") / "ws"
    fit(small_dataset, path, cfg, progress=silent)
    yield path
    shutil.rmtree(path)


def test_fit_above_the_threshold_maps_and_maps_from_a_sample(fitted_workspace, sampled_workspace):
    full, ws = open_workspace(fitted_workspace), open_workspace(sampled_workspace)
    n_protos, n_phrases = len(full.generator.output_ids), len(full.generator.vocab)
    size = n_protos // 2
    cfg = ws.config
    assert cfg.sample_above == size < n_phrases
    gen = ws.generator
    assert np.array_equal(gen.output_ids, full.generator.output_ids)  # the same generator (from the stage cache)
    ids = ws.maps.prototype_ids
    assert len(ids) == size == len(ws.maps.prototypes) and np.isin(ids, gen.output_ids).all()
    assert np.array_equal(ids, map_prototype_ids(gen.output_ids, size, cfg.seed))
    assert ws.manifest["map_prototypes"] == {"mapped": size, "of": n_protos}
    ex = Explorer(ws)
    assert map_sample(ex) == (size, n_protos) and len(prototype_table(ex)) == size
    emb = np.asarray(full.phrase_embeddings[:n_phrases])  # the sample's rows not stored were embedded (cached) when read
    sampled = fit_mapper(emb, gen.prototypes, sample_above=size, seed=cfg.seed)
    assert np.array_equal(ws.zeroshot_mapper.weight, sampled.weight)
    assert not np.array_equal(ws.zeroshot_mapper.weight, full.zeroshot_mapper.weight)
    assert ws.predictions["zeroshot"].shape == full.predictions["zeroshot"].shape

    # the text stage embedded only the phrases the images' text vectors use (the others: when read)
    assert "phrase_embeddings" not in ws.arrays and n_phrases > size
    stored = ws.arrays["phrase_embedding_ids"]
    assert np.array_equal(stored, used_phrase_ids(ws.phrase_ids, top_k=cfg.top_k, combined=False))
    assert len(stored) < n_phrases and ws.phrase_embeddings.shape == full.phrase_embeddings.shape
    assert np.array_equal(ws.arrays["phrase_embedding_rows"], full.phrase_embeddings[stored])
    assert np.array_equal(ws.text_vectors, full.text_vectors)  # the same rows, from the text-embedding cache
    assert np.array_equal(ws.predictions["multimodal"], full.predictions["multimodal"])

    # new images: their phrases outside the stored ones are embedded when read, and predict as before
    paths = [str(DEMO / r["image"]) for r in demo_rows() if r["label"] not in SMALL_LABELS][:12]
    feats, gen_in, _ = ws.embed(paths)
    _, ids, scores = ws.phrase_outputs(feats, gen_in)
    vectors, calls = ws.phrase_embeddings, []
    embed = vectors._embed
    vectors._embed = lambda texts: calls.append(list(texts)) or embed(texts)
    new = np.setdiff1d(ids[:, : cfg.top_k], stored)
    assert len(new) > 0
    assert np.allclose(ws.text_vectors_of(ids, scores), full.text_vectors_of(ids, scores), atol=1e-6)
    assert calls == [gen.vocab.texts(new)]  # each missing phrase embedded once, nothing else
    mine, theirs = ws.predict(paths[:3]), full.predict(paths[:3])
    for a, b in zip(mine, theirs):
        assert a.phrases == b.phrases and a.rankings["multimodal"] == b.rankings["multimodal"]


@pytest.mark.parametrize("sampled", [False, True])
def test_map_page_says_when_the_fit_laid_out_a_sample(fitted_workspace, sampled_workspace, sampled):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["workspace_path"] = str(sampled_workspace if sampled else fitted_workspace)
    at.run()
    at.switch_page("views/prototype_map.py").run()
    assert not at.exception, [e.message for e in at.exception]
    said = [c.value for c in at.caption if c.value.startswith("The fit laid out a random sample")]
    if sampled:
        mapped, of = map_sample(Explorer(open_workspace(sampled_workspace)))
        assert said == [
            f"The fit laid out a random sample (seeded) of {mapped:,} of the generator's {of:,} distinct phrase prototypes: "
            "highlights and selections here cover that sample; the gallery's phrase filter and predictions use every phrase."
        ]
    else:
        assert said == []


def test_phrase_vectors_read_stored_rows_and_embed_the_others_once(ws):
    full = np.asarray(ws.phrase_embeddings)
    phrases = list(ws.phrases)
    stored = np.arange(0, len(phrases), 3)
    calls = []

    def embed(texts):
        calls.append(texts)
        return full[[phrases.index(t) for t in texts]]

    vectors = PhraseVectors(stored, full[stored], phrases, embed)
    ids = np.array([[0, 1, 3], [4, 1, 6]])
    assert vectors.shape == full.shape and len(vectors) == len(phrases)
    assert np.array_equal(vectors[ids], full[ids]) and calls == [[phrases[1], phrases[4]]]
    assert np.array_equal(vectors[np.array([0, 3])], full[[0, 3]]) and len(calls) == 1  # stored rows: no embedding
    mask = np.zeros(len(phrases), bool)
    mask[[2, 3]] = True
    assert np.array_equal(vectors[mask], full[[2, 3]])
    with pytest.raises(IndexError):
        vectors[np.array([len(phrases)])]
    assert vectors[np.zeros((0, 3), np.int64)].shape == (0, 3, full.shape[1])


def test_cli_sets_the_threshold():
    from core.cli import _fit_config, build_parser

    parse = build_parser().parse_args
    assert _fit_config(parse(["fit", "data", "--workspace", "ws"])).sample_above == 200_000
    assert _fit_config(parse(["fit", "data", "--workspace", "ws", "--sample-above", "none"])).sample_above is None
    assert _fit_config(parse(["fit", "data", "--workspace", "ws", "--sample-above", "5000"])).sample_above == 5000


@pytest.mark.parametrize("combined", [False, True])
def test_used_phrase_ids_are_every_row_the_text_vectors_read(combined):
    from core.phrases.combined import image_text_vectors

    ids = np.array([[5, 2, 9, 100, 101, 102], [-1, 2, 7, 103, 100, 104]])
    used = used_phrase_ids(ids, top_k=2, combined=combined)
    assert used.tolist() == ([0, 2, 5, 100, 101, 103] if combined else [0, 2, 5])
    full = np.random.default_rng(0).normal(size=(110, 4)).astype(np.float32)

    def refuse(texts):
        raise AssertionError(f"embedded {texts}: a used phrase was not stored")

    vectors = PhraseVectors(used, full[used], [str(j) for j in range(110)], refuse)
    scores = np.ones(ids.shape, np.float32)
    for weighting in ("mean", "score"):
        kw = {"top_k": 2, "weighting": weighting, "combined": combined}
        assert np.array_equal(image_text_vectors(vectors, ids, scores, **kw), image_text_vectors(full, ids, scores, **kw))
