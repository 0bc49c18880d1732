"""The forward path, defined once: what each model reads, built from a workspace's arrays.

Fitting (:mod:`core.pipeline`), prediction (:meth:`core.workspace.Workspace.predict`), retraining
(:mod:`core.labels.retrain`) and the review queues (:mod:`core.labels.queue`) all call
:func:`model_inputs`, so a model's input cannot differ between training and use.

A new model registers its input with one line (the captions models read the same inputs as
their label-trained twins)::

    register_model_input("baseline_captions", MODEL_INPUTS["baseline"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from core.vectors import l2n


@dataclass(frozen=True)
class ImageArrays:
    """The per-image arrays every model input is built from.

    Attributes:
        visual: (N, D) raw backbone features (the classifier's backbone).
        text_vectors: (N, T) text vectors of the images' top phrases.
    """

    visual: np.ndarray
    text_vectors: np.ndarray


InputFn = Callable[[ImageArrays], np.ndarray]


def _baseline(a: ImageArrays) -> np.ndarray:
    return l2n(a.visual)


def _multimodal(a: ImageArrays) -> np.ndarray:
    return np.concatenate([l2n(a.visual), a.text_vectors], axis=1)


def _text_only(a: ImageArrays) -> np.ndarray:
    return a.text_vectors


MODEL_INPUTS: dict[str, InputFn] = {"baseline": _baseline, "multimodal": _multimodal, "text_only": _text_only}
# the caption models (core.captions) read the same inputs as their label-trained twins
MODEL_INPUTS.update(baseline_captions=_baseline, multimodal_captions=_multimodal)


def input_blocks(model: str, arrays: ImageArrays) -> tuple[int, ...] | None:
    """Widths of the modalities side by side in ``model``'s input (visual first), for fusion
    balancing (:class:`core.classifiers.Classifier`); None for a single-modality input."""
    if MODEL_INPUTS[model] is _multimodal:
        return (arrays.visual.shape[1], arrays.text_vectors.shape[1])
    return None


def register_model_input(name: str, build: InputFn) -> None:
    """Declare the input of a new classifier model (once, at import time of its module)."""
    if name in MODEL_INPUTS and MODEL_INPUTS[name] is not build:
        raise ValueError(f"model input {name!r} is already registered")
    MODEL_INPUTS[name] = build


def model_inputs(arrays: ImageArrays, models: Iterable[str]) -> dict[str, np.ndarray]:
    """Input matrix of each named model.

    Raises:
        KeyError: a model without a registered input.
    """
    out = {}
    for m in models:
        if m not in MODEL_INPUTS:
            raise KeyError(f"no input registered for model {m!r}; known: {', '.join(MODEL_INPUTS)}")
        out[m] = MODEL_INPUTS[m](arrays)
    return out


def generator_input(features: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """What the phrase generator sees: the classifier's features, plus a second backbone's if any."""
    return features if extra is None else np.concatenate([l2n(features), l2n(extra)], axis=1)


def generator_input_name(backbone: str, generator_backbone: str | None) -> str:
    """Name of the features a generator reads, e.g. ``efficientnet-lite0+efficientnet-lite2``."""
    return backbone + (f"+{generator_backbone}" if generator_backbone else "")
