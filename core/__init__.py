"""Multimodal image classification that infers context from pixels (Shah et al., CIKM 2019).

The public API, in one line each::

    import core
    ws = core.fit("data/manifest.csv", "my-workspace")      # -> Workspace
    ws = core.open_workspace("my-workspace")                 # reopen (fast, lazy)
    ws = core.demo_workspace()                               # the embedded demo (fitted once)
    preds = ws.predict(["photo.jpg"])                        # -> [Prediction] (``error`` set if unusable)

The modules, bottom-up (each imports only those above it):

* :mod:`core.lazy`, :mod:`core.progress`, :mod:`core.vectors`, :mod:`core.checkpoint`, :mod:`core.safetensors_mmap` --
  lazily loaded package names, progress callbacks, numpy vector helpers, safetensors + JSON model
  files, safetensors read memory-mapped.
* :mod:`core.config` -- :class:`FitConfig` and the model names (no heavy imports).
* :mod:`core.data`, :mod:`core.formats` -- manifests, image folders, robust image decoding;
  other dataset formats in and out.
* :mod:`core.vector_index` -- every neighbour look-up: the faiss index, and above 100k images a
  PCA projection saved in the workspace, re-ranked exactly.
* :mod:`core.backbones`, :mod:`core.features` -- visual backbones by name; batched, cached embeddings.
* :mod:`core.runtimes` -- the backbone exported to ONNX and run by OpenVINO or ONNX Runtime.
* :mod:`core.engines`, :mod:`core.batch` -- the Ray Data engine; ``predict-batch`` to parquet shards.
* :mod:`core.text` -- sentence-transformers phrase embeddings (cached).
* :mod:`core.phrases` -- phrase vocabulary, generator, prototype index, cross-fitting,
  ImageNet phrases, and the phrase-source registry (:mod:`core.phrases.sources`).
* :mod:`core.forward` -- every model's input, defined once (a registry).
* :mod:`core.classifiers`, :mod:`core.training`, :mod:`core.captions` -- the classifier heads;
  targets and training; caption labels for the caption models.
* :mod:`core.zeroshot`, :mod:`core.metrics`, :mod:`core.projection` -- zero-shot labels,
  evaluation, UMAP maps.
* :mod:`core.workspace_files`, :mod:`core.workspace` -- a workspace on disk (layout, lock,
  safe replace; every write, add-on models and caches included) and the :class:`Workspace` API.
* :mod:`core.corpus`, :mod:`core.pipeline`, :mod:`core.demo` -- reusable phrase generators,
  the fit, the demo.
* :mod:`core.explore`, :mod:`core.maps`, :mod:`core.compare` -- views the app's pages draw.
* :mod:`core.labels`, :mod:`core.predictions`, :mod:`core.retrieval`, :mod:`core.tags` --
  labeling (store, queues, out-of-fold probabilities, retrain, export), attached predictions,
  semantic retrieval, tag neighbourhoods.
* :mod:`core.jobs` -- background fits (a detached ``python -m core ... --job`` process) the app watches.
* :mod:`core.cli`, :mod:`core.predictions_cli` -- ``python -m core`` / ``pixctx``.
"""

from __future__ import annotations

from core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "FitConfig": "core.config",
    "fit": "core.pipeline",
    "Workspace": "core.workspace",
    "Prediction": "core.workspace",
    "open_workspace": "core.workspace",
    "demo_workspace": "core.demo",
    "create_backbone": "core.backbones",
    "list_backbones": "core.backbones",
    "load_dataset": "core.data",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
