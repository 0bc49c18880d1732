"""A finished phrase-generator stage, kept in the cache so that a resumed or repeated fit skips it.

The key hashes everything the stage's result depends on (the generator's input features, the
phrases, the corpus rows, the configuration), like the image-feature cache: a changed input is a
new key, never a stale hit. Files: ``<cache>/phrase_stage/<key>/generator/`` (the full generator)
and ``outputs.safetensors`` (the per-row outputs); written to a ``.partial`` folder, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from core.phrases.crossfit import PhraseOutputs
from core.phrases.generator import GeneratorConfig, PhraseGenerator
from core.phrases.occurrences import PhraseOccurrences

FOLDER = "phrase_stage"


def stage_key(
    features: np.ndarray,
    phrase_lists: list[list[str]] | PhraseOccurrences,
    corpus: np.ndarray,
    config: GeneratorConfig,
    **settings: object,
) -> str:
    """SHA-1 of the stage's inputs (features, phrases, corpus rows, config and ``settings``);
    :class:`~core.phrases.occurrences.PhraseOccurrences` are hashed by their Arrow buffers."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(corpus, dtype=bool).tobytes())
    if isinstance(phrase_lists, PhraseOccurrences):
        h.update(phrase_lists.digest())
        phrase_lists = "arrow"
    h.update(json.dumps([phrase_lists, asdict(config), settings], sort_keys=True, default=str).encode())
    return h.hexdigest()


def cached_stage(
    cache_root: Path, key: str, compute: Callable[[], tuple[PhraseGenerator, PhraseOutputs]]
) -> tuple[PhraseGenerator, PhraseOutputs]:
    """The stored result under ``key``, else ``compute()``'s (then stored)."""
    folder = Path(cache_root) / FOLDER / key
    if (folder / "outputs.safetensors").is_file():
        arrays = load_file(str(folder / "outputs.safetensors"))
        outs = PhraseOutputs(**{f.name: arrays[f.name] for f in fields(PhraseOutputs)})
        return PhraseGenerator.load(folder / "generator"), outs
    generator, outs = compute()
    tmp = folder.with_name(key + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        generator.save(tmp / "generator")
        arrays = {f.name: np.ascontiguousarray(getattr(outs, f.name)) for f in fields(PhraseOutputs)}
        save_file(arrays, str(tmp / "outputs.safetensors"))
        if not folder.exists():
            tmp.rename(folder)
    except OSError:
        pass  # a read-only or full cache only costs the next fit this stage
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return generator, outs
