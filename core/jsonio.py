"""Strict JSON: what the product writes for other programs (``manifest.json``, ``--json`` output).

Python's ``json.dumps`` writes an undefined number (NaN, e.g. a metric with no test image) as
``NaN``, which jq, JavaScript and every JSON parser other than Python's refuse. Here it is
``null``; a reader that expects a number turns ``null`` back into NaN where it reads it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable


def finite_or_none(obj: object) -> object:
    """``obj`` with every non-finite float (NaN, infinity), at any depth of its dicts, lists and
    tuples, replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def strict_json(obj: object, *, default: Callable[[object], object] | None = None) -> str:
    """``obj`` as strict, indented JSON: a non-finite float is ``null`` (:func:`finite_or_none`).

    Args:
        obj: what to write.
        default: as ``json.dumps``'s, for objects JSON has no type for.
    """
    return json.dumps(finite_or_none(obj), indent=2, allow_nan=False, default=default)
