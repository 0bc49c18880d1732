"""Datasets: manifests, image folders and robust image decoding."""

from __future__ import annotations

from core.data.images import ImageError, load_image
from core.data.manifest import Dataset, DatasetIssue, load_dataset

__all__ = ["Dataset", "DatasetIssue", "ImageError", "load_dataset", "load_image"]
