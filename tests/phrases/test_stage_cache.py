"""The phrase-generator stage cache: a resumed fit gets the finished stage back, a changed input misses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.phrases.crossfit import crossfit_phrases
from core.phrases.generator import GeneratorConfig
from core.phrases.stage_cache import cached_stage, stage_key
from tests.phrases.test_generator import _corpus


def test_a_finished_stage_is_reused_and_a_changed_input_is_not(tmp_path):
    x, lists, _c, _ = _corpus(n=60)
    corpus = np.ones(60, dtype=bool)
    cfg = GeneratorConfig(epochs=3, bottleneck_dim=8, hidden_dim=32)
    key = stage_key(x, lists, corpus, cfg, n_folds=2, k=5)
    calls = []

    def compute():
        calls.append(1)
        return crossfit_phrases(x, lists, corpus, cfg, n_folds=2, k=5)

    gen, outs = cached_stage(tmp_path, key, compute)
    again_gen, again = cached_stage(tmp_path, key, lambda: pytest.fail("the stored stage was not reused"))
    assert calls == [1]
    for name in ("coembedding_crossfit", "coembedding", "ids", "scores", "fold"):
        assert np.array_equal(getattr(outs, name), getattr(again, name))
    assert again_gen.vocab.phrases == gen.vocab.phrases
    assert np.allclose(again_gen.encode(x[:5]), gen.encode(x[:5]))
    # any input that changes the result changes the key
    assert stage_key(x, lists, corpus, replace(cfg, epochs=4), n_folds=2, k=5) != key
    assert stage_key(x + 1e-3, lists, corpus, cfg, n_folds=2, k=5) != key
    assert stage_key(x, [*lists[:-1], ["other"]], corpus, cfg, n_folds=2, k=5) != key
    assert stage_key(x, lists, corpus, cfg, n_folds=3, k=5) != key
