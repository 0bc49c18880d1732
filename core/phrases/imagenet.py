"""The backbone's ImageNet-1k head as an offline phrase source, for collections without text.

Eq. 1 with the 1000 ImageNet classes as queries: each class is one phrase, written as its
WordNet lemmas ("tench, Tinca tinca"), scored by the head's softmax. The class list and
lemmas ship in ``core/resources/imagenet1k.json`` (from timm's ``data/_info``). WordNet
hypernyms are not shipped by any package we can use offline, so the output space is the
1000 classes only.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

RESOURCE = Path(__file__).resolve().parent.parent / "resources" / "imagenet1k.json"


@lru_cache(maxsize=1)
def imagenet_phrases() -> list[str]:
    """The 1000 class phrases, in the head's output order."""
    data = json.loads(RESOURCE.read_text())
    return [", ".join(c["lemmas"][:3]) for c in data["classes"]]


def imagenet_top_phrases(logits: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, probabilities)`` of the top-k classes per image, best first."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    ids = np.argsort(-p, axis=1)[:, :k]
    return ids, np.take_along_axis(p, ids, axis=1).astype(np.float32)
