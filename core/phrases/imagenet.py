"""The backbone's ImageNet-1k head as an offline phrase source, for collections without text.

Eq. 1 with the 1000 ImageNet classes as queries: each class is one phrase, written as its
WordNet lemmas ("tench, Tinca tinca"), scored by the head. The output space is widened with
the classes' WordNet hypernyms ("dog", "vehicle", "citrus fruit"), each with the prototype =
mean of its children's weight vectors, i.e. the mean of the children's logits. Classes and
hypernyms are ranked together by one softmax. The class list and lemmas come from timm's
``data/_info`` (``core/resources/imagenet1k.json``); the hierarchy from WordNet 3.0
(``scripts/build_imagenet_hierarchy.py`` -> ``core/resources/imagenet_hypernyms.json``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


@lru_cache(maxsize=1)
def _hypernym_matrix() -> np.ndarray:
    """(H, 1000) rows averaging each hypernym's children."""
    hyper = json.loads((RESOURCES / "imagenet_hypernyms.json").read_text())["hypernyms"]
    m = np.zeros((len(hyper), 1000), dtype=np.float32)
    for i, h in enumerate(hyper):
        m[i, h["children"]] = 1.0 / len(h["children"])
    return m


@lru_cache(maxsize=1)
def imagenet_phrases() -> list[str]:
    """The 1000 class phrases (in the head's output order), then the hypernym phrases."""
    classes = json.loads((RESOURCES / "imagenet1k.json").read_text())["classes"]
    hyper = json.loads((RESOURCES / "imagenet_hypernyms.json").read_text())["hypernyms"]
    return [", ".join(c["lemmas"][:3]) for c in classes] + [", ".join(h["lemmas"][:3]) for h in hyper]


def imagenet_top_phrases(logits: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, probabilities)`` of the top-k classes or hypernyms per image, best first."""
    extended = np.concatenate([logits, logits @ _hypernym_matrix().T], axis=1)
    z = extended - extended.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    ids = np.argsort(-p, axis=1)[:, :k]
    return ids, np.take_along_axis(p, ids, axis=1).astype(np.float32)
