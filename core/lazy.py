"""Package names that load their module on first use (PEP 562), so importing a light submodule
never imports a heavy one (torch, pandas) through its package's ``__init__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` resolving each name in ``exports`` from its module.

    >>> __getattr__ = lazy_exports(__name__, {"load_dataset": "core.data.manifest"})
    """

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
