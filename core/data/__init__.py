"""Datasets: manifests, image folders and robust image decoding.

Lazy: decoding worker processes import :mod:`core.data.images` alone, not pandas.
"""

from __future__ import annotations

from core.lazy import lazy_exports

_EXPORTS = {
    "Dataset": "core.data.manifest",
    "DatasetIssue": "core.data.manifest",
    "load_dataset": "core.data.manifest",
    "ImageError": "core.data.images",
    "load_image": "core.data.images",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
