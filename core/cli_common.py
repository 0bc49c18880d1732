"""Helpers shared by the command-line modules (``core.cli``, ``core.labels.cli``): argparse types
and strict JSON output. A module of its own so that a sub-command's module need not import
``core.cli``, which imports it back."""

from __future__ import annotations

import argparse
import json
import math


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--top 0`` printed nothing, ``--top -2`` all but two)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def json_text(obj: object) -> str:
    """``obj`` as strict JSON (indented): a metric that is undefined (NaN, e.g. with no test image)
    is ``null``, not the ``NaN`` that ``json.dumps`` writes and JSON parsers other than Python's refuse."""

    def clean(v: object) -> object:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2, allow_nan=False)
