"""Progress reporting that works for the CLI (tqdm) and the app (any callback).

Long steps call ``progress(stage, done, total)``; ``total`` is 0 for steps of unknown length.
The app passes its own callable (a Streamlit progress bar); the CLI uses :class:`TqdmProgress`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]


class TqdmProgress:
    """One tqdm bar per stage, on stderr."""

    def __init__(self) -> None:
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = tqdm(total=total or None, desc=stage, file=sys.stderr, leave=True, dynamic_ncols=True)
            self._bars[stage] = bar
        bar.n = done  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]
        if total and done >= total:
            bar.close()  # type: ignore[attr-defined]


def silent(stage: str, done: int, total: int) -> None:
    """A progress callback that reports nothing."""
