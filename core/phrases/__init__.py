"""Phrase generation: image -> web-query-like phrases (paper §3.2).

Submodules: :mod:`~core.phrases.vocab` (what counts as a phrase; the vocabulary's file is
:mod:`~core.phrases.vocab_file`; a fit's phrases past memory are Arrow columns,
:mod:`~core.phrases.occurrences`), :mod:`~core.phrases.generator`
(the generator, torch), :mod:`~core.phrases.index` (faiss prototype index),
:mod:`~core.phrases.crossfit` (leak-free phrases for training rows), :mod:`~core.phrases.imagenet`
and :mod:`~core.phrases.combined` (the ImageNet source, alone or beside the corpus), and
:mod:`~core.phrases.sources` (the registry of phrase sources). Names load lazily, so importing a
light submodule never imports torch.
"""

from __future__ import annotations

from core.lazy import lazy_exports

_EXPORTS = {
    "GeneratorConfig": "core.config",
    "PhraseGenerator": "core.phrases.generator",
    "fit_phrase_generator": "core.phrases.generator",
    "PhraseIndex": "core.phrases.index",
    "auto_factory": "core.phrases.index",
    "PhraseVocabulary": "core.phrases.vocab",
    "extract_phrases": "core.phrases.vocab",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
