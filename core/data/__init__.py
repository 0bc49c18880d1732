"""Datasets: manifests, image folders and robust image decoding.

Lazy: decoding worker processes import :mod:`core.data.images` alone, not pandas.
"""

from __future__ import annotations

_EXPORTS = {
    "Dataset": "core.data.manifest",
    "DatasetIssue": "core.data.manifest",
    "load_dataset": "core.data.manifest",
    "ImageError": "core.data.images",
    "load_image": "core.data.images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core.data' has no attribute {name!r}")
