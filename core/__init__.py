"""Multimodal image classification that infers context from pixels.

The pipeline (Shah et al., CIKM 2019) reads like the package layout:

* :mod:`core.data` -- manifests, image folders, robust image decoding.
* :mod:`core.backbones` -- visual backbones by name (``list_backbones()``).
* :mod:`core.features` -- batched, cached visual embeddings.
* :mod:`core.phrases` -- phrase vocabulary, phrase generator, prototype index.
* :mod:`core.text` -- sentence-transformers phrase embeddings.
* :mod:`core.classifiers` -- baseline / multimodal / text-only heads.
* :mod:`core.zeroshot` -- zero-shot labels in the co-embedding space.
* :mod:`core.metrics`, :mod:`core.projection` -- evaluation and UMAP maps.
* :mod:`core.workspace`, :mod:`core.pipeline` -- fitting and reopening a workspace.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "FitConfig": "core.pipeline",
    "fit": "core.pipeline",
    "Workspace": "core.workspace",
    "open_workspace": "core.workspace",
    "create_backbone": "core.backbones",
    "list_backbones": "core.backbones",
    "load_dataset": "core.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    # Lazy: `import core` stays cheap (no torch import) for the CLI's --help.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
