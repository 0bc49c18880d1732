"""Phrase generation: image -> web-query-like phrases (paper §3.2)."""

from __future__ import annotations

from core.phrases.generator import GeneratorConfig, PhraseGenerator, fit_phrase_generator
from core.phrases.index import PhraseIndex, auto_factory
from core.phrases.vocab import PhraseVocabulary, extract_phrases

__all__ = [
    "GeneratorConfig",
    "PhraseGenerator",
    "PhraseIndex",
    "PhraseVocabulary",
    "auto_factory",
    "extract_phrases",
    "fit_phrase_generator",
]
