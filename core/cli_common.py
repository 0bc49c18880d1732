"""Helpers shared by the command-line modules (``core.cli``, ``core.labels.cli``): argparse types
(their strict JSON output is :mod:`core.jsonio`'s). A module of its own so that a sub-command's module need not import
``core.cli``, which imports it back."""

from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--top 0`` printed nothing, ``--top -2`` all but two)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n
