"""Which phrases contain a query once both are normalised (Explore's phrase filter), over an Arrow
column: no Python string per phrase, so a vocabulary of 40M phrases is searched where it is mapped.

Vocabulary phrases are normalised when they are extracted (:func:`core.phrases.vocab.normalize`),
so most are their own normal form. Those that are certainly so -- ASCII words of letters and digits
(with inner ``'`` or ``-``) separated by single spaces, found by one RE2 pass in Arrow -- are
searched as they are; only the others (accents, other scripts, capitals, punctuation: ImageNet class
names, a legacy vocabulary) are normalised in Python, once, and searched in their normal form. A
query is then one substring scan of the column in Arrow's C++ kernels. Matches are exactly those of
``query in normalize(phrase)`` for every phrase.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.phrases.vocab import normalize

#: ASCII phrases that ``normalize`` leaves unchanged (its token pattern, restricted to ASCII).
_ASCII_WORD = "[a-z0-9]+(?:['-][a-z0-9]+)*"
PLAIN = f"^{_ASCII_WORD}(?: {_ASCII_WORD})*$"


class PhraseFilter:
    """Substring search of normalised queries in normalised phrases.

    Attributes:
        array: the phrases as an Arrow string array (a vocabulary file's column is used where it
            is mapped, not copied).
        other_ids: ids of the phrases that are not certainly in normal form.
        other: their normal forms (an Arrow array, same order).
    """

    def __init__(self, phrases: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = getattr(phrases, "array", None)  # a vocabulary's column, or ChainedPhrases' (Arrow, not Python strings)
        self.array = array if isinstance(array, pa.Array) else pa.array(list(phrases), type=pa.large_string())
        plain = pc.match_substring_regex(self.array, PLAIN).to_numpy(zero_copy_only=False)
        self.other_ids = np.flatnonzero(~plain)
        self.other = pa.array(
            [normalize(p) for p in self.array.take(pa.array(self.other_ids)).to_pylist()], type=pa.large_string()
        )

    def __len__(self) -> int:
        return len(self.array)

    def containing(self, query: str) -> np.ndarray:
        """Ids of the phrases whose normal form contains ``normalize(query)``, ascending (none for
        an empty query)."""
        import pyarrow.compute as pc

        q = normalize(query)
        if not q:
            return np.zeros(0, dtype=np.int64)
        hit = pc.match_substring(self.array, q).to_numpy(zero_copy_only=False)
        if len(self.other_ids):
            hit[self.other_ids] = pc.match_substring(self.other, q).to_numpy(zero_copy_only=False)
        return np.flatnonzero(hit).astype(np.int64)
