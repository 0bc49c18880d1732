"""Inference runtimes for a backbone's feature extractor: torch eager, ONNX Runtime, OpenVINO.

>>> resolve_runtime("auto", "cpu")          # the fastest installed runtime on this machine
'openvino'
>>> bb = create_backbone("efficientnet-lite0", device="cpu", runtime="openvino")

The backbone (images -> pooled features) is exported once to ONNX from a clean copy of the torch
module (evaluation mode, no parameter requiring grad) and cached under
``<cache>/runtimes/<backbone>-<size>-<weights hash>/model.onnx``: a protobuf, never a pickle, keyed
by the SHA-1 of the weights, so a changed checkpoint never reuses a stale export. ONNX Runtime and
OpenVINO both read that file. The ImageNet-1k head is a linear layer on the pooled features and stays
in torch (it is 0.1% of the compute).

``auto`` picks, on CPU, OpenVINO, then ONNX Runtime, then torch. Both optimised runtimes are about
5× torch eager on the 2-core development machine and within 5% of each other (idle, one run of
``bench/throughput.py``: ONNX Runtime 169, OpenVINO 162, torch 31 images/s); OpenVINO stays first
so that workspaces and feature caches made before that measurement keep their runtime. On CUDA it
picks torch (batched fp16).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
#: CPU runtimes in ``auto``'s order of preference (see above); ``auto`` takes the first installed.
AUTO_ORDER = ("openvino", "onnxruntime", "torch")
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
_EXTRAS = {"openvino": "openvino", "onnxruntime": "onnx"}

Runner = Callable[[np.ndarray], np.ndarray]


def available_runtimes() -> list[str]:
    """Runtimes that can run here (``torch`` always; the others when their package and ``onnx``,
    which the export needs, are installed)."""
    if importlib.util.find_spec("onnx") is None:
        return ["torch"]
    return ["torch", *(name for name, mod in _MODULES.items() if importlib.util.find_spec(mod) is not None)]


def resolve_runtime(runtime: str, device: str) -> str:
    """The concrete runtime for ``runtime`` (``auto`` or a name) on ``device`` (``cpu``/``cuda``).

    Raises:
        ValueError: an unknown name, or a CPU runtime asked for on a GPU.
        ImportError: the runtime's package is not installed (the message names the extra).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if device != "cpu":
        if runtime not in ("auto", "torch"):
            raise ValueError(f"runtime {runtime!r} runs on CPU; on {device} the backbone runs in torch (batched fp16)")
        return "torch"
    have = available_runtimes()
    if runtime == "auto":
        return next(r for r in AUTO_ORDER if r in have)
    if runtime not in have:
        raise ImportError(f"runtime {runtime!r} is not installed: `pip install pixctx[{_EXTRAS[runtime]}]`")
    return runtime


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-1 of a module's state (names, shapes, dtypes and bytes of every tensor)."""
    import torch

    h = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_onnx(module: torch.nn.Module, name: str, image_size: int, cache_root: str | Path) -> Path:
    """Export ``module`` (images ``(N, 3, S, S)`` -> features) to ONNX once; return the cached file.

    Args:
        module: a clean feature module (see :meth:`core.backbones.Backbone.export_module`).
        name: the backbone's name (part of the cache folder).
        image_size: input side ``S``.
        cache_root: cache folder; the file goes under ``runtimes/``.
    """
    import torch

    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{name}-{image_size}-{weights_digest(module)[:16]}")
    path = Path(cache_root).expanduser() / "runtimes" / folder / "model.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.onnx")
    example = torch.zeros(2, 3, image_size, image_size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's constant-folding notes
            torch.onnx.export(
                module,
                (example,),
                str(tmp),
                input_names=["images"],
                output_names=["features"],
                dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)  # atomic: a killed export never leaves a half-written model behind
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnxruntime_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A function running the ONNX model with ONNX Runtime on CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(["features"], {"images": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return run


def openvino_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A function running the ONNX model with OpenVINO on CPU (throughput mode: a batch is split
    across the plugin's parallel streams)."""
    import openvino as ov

    # CACHE_DIR: OpenVINO's own compiled-model cache beside the export, so a new process starts fast
    config: dict[str, object] = {"PERFORMANCE_HINT": "THROUGHPUT", "CACHE_DIR": str(Path(path).parent / "openvino")}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    queue = ov.AsyncInferQueue(compiled, streams)
    out: dict[int, np.ndarray] = {}
    queue.set_callback(lambda request, key: out.__setitem__(key, request.get_output_tensor(0).data.copy()))

    def run(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        parts = np.array_split(np.arange(len(batch)), min(streams, len(batch)))
        out.clear()
        for key, idx in enumerate(parts):
            queue.start_async({0: batch[idx[0] : idx[-1] + 1]}, key)
        queue.wait_all()
        return np.concatenate([out[k] for k in range(len(parts))])

    return run


def make_runner(runtime: str, onnx_path: str | Path, threads: int | None = None) -> Runner:
    """The runner of a CPU runtime (``onnxruntime`` or ``openvino``) for an exported model."""
    if runtime == "onnxruntime":
        return onnxruntime_runner(onnx_path, threads)
    if runtime == "openvino":
        return openvino_runner(onnx_path, threads)
    raise ValueError(f"no exported-model runner for runtime {runtime!r}")
