"""Backbone runtimes: the exported model in ONNX Runtime / OpenVINO gives torch's features on real images."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from core import runtimes
from core.backbones import create_backbone
from core.data.images import load_image
from core.runtimes import available_runtimes, resolve_runtime, weights_digest
from tests.conftest import DEMO, demo_rows

OPTIONAL = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} not installed (optional extra)"),
    )
    for name in ("openvino", "onnxruntime")
]


@pytest.fixture(scope="module")
def demo_batch() -> np.ndarray:
    torch_bb = create_backbone("efficientnet-lite0", device="cpu")
    rows = demo_rows()[::97][:24]  # spread over the demo's labels
    return np.stack([torch_bb.preprocess(load_image(DEMO / r["image"])) for r in rows])


@pytest.fixture(scope="module")
def torch_outputs(demo_batch):
    bb = create_backbone("efficientnet-lite0", device="cpu")
    feats = bb.embed_batch(demo_batch)
    return feats, bb.imagenet_logits(feats)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("runtime", OPTIONAL)
def test_exported_runtime_matches_torch_on_demo_images(runtime, demo_batch, torch_outputs, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "runtime-cache"  # one export shared by both runtimes
    bb = create_backbone("efficientnet-lite0", device="cpu", runtime=runtime, cache_dir=cache)
    assert bb.runtime == runtime
    feats = bb.embed_batch(demo_batch)
    ref_feats, ref_logits = torch_outputs
    assert feats.shape == ref_feats.shape and feats.dtype == np.float32
    assert _cosine(feats, ref_feats).min() >= 0.999
    # the ImageNet head (the `imagenet` phrase source) ranks the same classes first
    logits = bb.imagenet_logits(feats)
    assert (logits.argmax(1) == ref_logits.argmax(1)).mean() >= 0.95
    # odd batch sizes (a last partial batch) and a single image work too
    assert np.allclose(bb.embed_batch(demo_batch[:5]), feats[:5], atol=1e-4)
    assert bb.embed_batch(demo_batch[:1]).shape == (1, 1280)
    # the export is an ONNX protobuf cached by the weights' hash, and reused
    files = list(cache.glob("runtimes/*/model.onnx"))
    assert len(files) == 1 and weights_digest(bb.export_module())[:16] in files[0].parent.name
    assert files[0].read_bytes()[:2] != b"\x80\x04"  # not a pickle
    mtime = files[0].stat().st_mtime_ns
    create_backbone("efficientnet-lite0", device="cpu", runtime=runtime, cache_dir=cache)
    assert files[0].stat().st_mtime_ns == mtime


def test_weights_digest_follows_the_weights():
    bb = create_backbone("efficientnet-lite0", device="cpu")
    before = weights_digest(bb.module)
    assert before == weights_digest(bb.export_module().model)  # the clean copy has the same weights
    clean = bb.export_module()
    assert not any(p.requires_grad for p in clean.parameters()) and not clean.training
    with torch.no_grad():
        next(clean.parameters()).add_(1.0)
    assert weights_digest(clean.model) != before
    assert weights_digest(bb.module) == before  # the backbone itself is untouched


def test_runtime_choice_and_errors(monkeypatch):
    assert resolve_runtime("torch", "cpu") == "torch"
    assert resolve_runtime("auto", "cuda") == "torch"  # GPUs run torch in fp16
    assert resolve_runtime("auto", "cpu") == next(r for r in runtimes.AUTO_ORDER if r in available_runtimes())
    with pytest.raises(ValueError, match="unknown runtime"):
        resolve_runtime("tensorrt", "cpu")
    with pytest.raises(ValueError, match="runs on CPU"):
        resolve_runtime("openvino", "cuda")
    monkeypatch.setattr(runtimes, "available_runtimes", lambda: ["torch"])  # a default install without extras
    assert resolve_runtime("auto", "cpu") == "torch"
    with pytest.raises(ImportError, match=r"pixctx\[openvino\]"):
        resolve_runtime("openvino", "cpu")
    with pytest.raises(ImportError, match=r"pixctx\[onnx\]"):
        resolve_runtime("onnxruntime", "cpu")
