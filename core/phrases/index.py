"""Nearest-prototype search with faiss (paper Eq. 3: top-k phrases = top-k prototypes).

Prototypes are L2-normalised, so inner product = cosine similarity. Up to 100k prototypes exact
search takes about 1 ms per image on 2 CPU cores. Above, an inverted-file index over about
4 * sqrt(n) lists that stores each prototype's residual from its list centre in half precision
(``IVF{nlist},SQfp16``): recall@3 0.978 at 10M prototypes in 0.3 ms per image and 1.3 GiB
(``bench/phrase_index.py``, ``docs/results.md``). Product-quantised codes re-ranked with fp16
vectors were tried and stop near 0.94 at 10M: neighbours that dense differ by about the error fp16
rounding of a whole vector adds to a score, while a residual's rounding error is a fraction of it.
:func:`auto_factory` picks one; any faiss factory string overrides it.
"""

from __future__ import annotations

from core.vector_index import EXACT_MAX, K_FACTOR, NPROBE, VectorIndex, auto_factory, ivf_nlist, ivf_train_size

#: the phrase index is the product's vector index over prototypes
PhraseIndex = VectorIndex

__all__ = ["EXACT_MAX", "K_FACTOR", "NPROBE", "PhraseIndex", "auto_factory", "ivf_nlist", "ivf_train_size"]
