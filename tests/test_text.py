from __future__ import annotations

import numpy as np
import pytest

from core.text import TextEncoder, phrase_text_vectors


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder()  # the packaged all-MiniLM-L6-v2, offline


def test_packaged_model_embeds_semantically(encoder):
    e = encoder.encode(["red apple", "green apple", "fire truck"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]


def test_top_k_mean_and_score_weighting():
    emb = np.eye(4, dtype=np.float32)
    ids = np.array([[0, 1, 2, 3], [3, -1, -1, -1]])
    scores = np.array([[0.9, 0.1, 0.1, 0.1], [0.5, 0, 0, 0]], dtype=np.float32)
    v = phrase_text_vectors(emb, ids, scores, k=3)
    assert np.allclose(v[0], [1 / np.sqrt(3)] * 3 + [0]) and np.allclose(v[1], [0, 0, 0, 1])
    w = phrase_text_vectors(emb, ids, scores, k=3, weighting="score")
    assert w[0, 0] > w[0, 1]
    with pytest.raises(ValueError):
        phrase_text_vectors(emb, ids, scores, weighting="max")
