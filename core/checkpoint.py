"""Model files: tensors in ``NAME.safetensors``, everything else in ``NAME.json`` (no pickles)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


def save_checkpoint(folder: str | Path, name: str, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``tensors`` and the JSON-serialisable ``meta`` of one model."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=2))


def load_checkpoint(folder: str | Path, name: str) -> tuple[dict[str, np.ndarray], dict]:
    """``(tensors, meta)`` of one model written by :func:`save_checkpoint`."""
    folder = Path(folder)
    return load_file(str(folder / f"{name}.safetensors")), json.loads((folder / f"{name}.json").read_text())


def module_tensors(module, prefix: str = "") -> dict[str, np.ndarray]:
    """A torch module's state as numpy arrays (keys prefixed)."""
    return {prefix + k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_module_tensors(module, tensors: dict[str, np.ndarray], prefix: str = "") -> None:
    """Load the ``prefix``-ed arrays of ``tensors`` into a torch module."""
    import torch

    module.load_state_dict({k[len(prefix) :]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith(prefix)})
