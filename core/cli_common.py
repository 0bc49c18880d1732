"""Helpers shared by the command-line modules (``core.cli``, ``core.labels.cli``): argparse types
and strict JSON output. A module of its own so that a sub-command's module need not import
``core.cli``, which imports it back."""

from __future__ import annotations

import argparse

from core.jsonio import strict_json


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
    return strict_json(obj)
