"""A reusable phrase generator, fitted on all the text there is.

Captions are plentiful, labels are not: a phrase generator can learn from any collection of
(image, text) pairs -- labelled and unlabelled rows, several manifests combined -- be saved once,
and then be applied to any dataset with ``fit(..., FitConfig(phrase_source=FOLDER))``.

The generator folder also records the SHA-1 of every corpus image (``corpus.safetensors``), so a
later fit can tell which of its images' captions the generator has seen (a leak for test images).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from core.backbones import create_backbone, resolve_device
from core.config import GeneratorConfig
from core.data.manifest import load_dataset
from core.features import FeatureCache, cache_key, default_cache_dir, embed_images
from core.forward import generator_input, generator_input_name
from core.phrases.generator import PhraseGenerator, fit_phrase_generator
from core.phrases.vocab import extract_phrases
from core.progress import ProgressFn, TqdmProgress


def fit_corpus_generator(
    sources: list[str | Path],
    out: str | Path,
    *,
    backbone: str = "efficientnet-lite0",
    generator_backbone: str | None = None,
    config: GeneratorConfig | None = None,
    include_test: bool = False,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> PhraseGenerator:
    """Fit a phrase generator on the text of several datasets and save it to ``out``.

    Args:
        sources: dataset paths (manifests or folders); every row with text or tags is used,
            labelled or not.
        out: folder to write (``generator.json``, ``vocab.arrow``, safetensors).
        backbone: the backbone of the workspaces it will serve.
        generator_backbone: optional second backbone the generator also sees.
        config: generator hyper-parameters.
        include_test: also learn from rows marked ``test`` (leave off to evaluate on them later).
        device: ``auto``, ``cpu`` or ``cuda``.
        cache_dir: feature cache.
        progress: progress callback (default: tqdm).

    Raises:
        ValueError: ``out`` exists and is neither an empty folder nor a saved phrase generator.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "generator.json").is_file())):
        raise ValueError(
            f"{out} exists and is not a saved phrase generator (no generator.json): saving there would "
            "overwrite its files, so nothing was written; choose a new or empty folder"
        )
    prog = progress or TqdmProgress()
    dev = resolve_device(device)
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    bbs = [create_backbone(backbone, device=dev)]
    if generator_backbone:
        bbs.append(create_backbone(generator_backbone, device=dev))
    paths: list[str] = []
    lists: list[list[str]] = []
    for src in sources:
        ds = load_dataset(src)
        rows = ds.items if include_test else ds.items[ds.items["split"] != "test"]
        for p, tx, tg in zip(rows["path"], rows["text"], rows["tags"]):
            phrases = extract_phrases(tx, tg)
            if phrases:
                paths.append(p)
                lists.append(phrases)
    feats = []
    errors: set[int] = set()
    for bb in bbs:
        f, err, digests = embed_images(paths, bb, cache=FeatureCache(cache_root, cache_key(bb, None)), progress=prog)
        feats.append(f)
        errors |= set(err)
    ok = np.array([i not in errors for i in range(len(paths))])
    x = generator_input(feats[0][ok], feats[1][ok] if len(feats) > 1 else None)
    name = generator_input_name(backbone, generator_backbone)
    gen = fit_phrase_generator(x, [lst for lst, k in zip(lists, ok) if k], config, backbone=name, progress=prog)
    gen.save(out)
    seen = np.frombuffer(b"".join(d for d, k in zip(digests, ok) if k), dtype=np.uint8).reshape(-1, 20)
    save_file({"sha1": seen}, str(out / "corpus.safetensors"))
    (out / "corpus.json").write_text(
        json.dumps(
            {
                "sources": [str(s) for s in sources],
                "images": int(ok.sum()),
                "include_test": include_test,
                "config": asdict(gen.config),
            },
            indent=2,
        )
    )
    return gen


def corpus_digests(folder: str | Path) -> set[bytes]:
    """SHA-1 digests of the images a saved generator learned from (empty if unknown)."""
    path = Path(folder) / "corpus.safetensors"
    if not path.is_file():
        return set()
    return {row.tobytes() for row in load_file(str(path))["sha1"]}
