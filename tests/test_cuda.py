"""The CUDA path (skipped without a GPU; run on a GPU machine): the same features as the CPU's,
from uint8 pixels normalised on the device and from files decoded in worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.backbones import create_backbone
from core.data.images import decode_pixels
from core.features import embed_images, local_engine
from tests.conftest import DEMO, demo_rows

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_cuda_features_match_the_cpu_features_per_image():
    cpu = create_backbone("efficientnet-lite0", device="cpu")
    gpu = create_backbone("efficientnet-lite0", device="cuda")
    paths = [str(DEMO / r["image"]) for r in demo_rows()[:64]]
    ok, pixels, errors = decode_pixels(paths, cpu.info.image_size)
    assert len(ok) == 64 and not errors
    ref = cpu.embed_batch(pixels)
    assert _cosine(gpu.embed_batch(pixels), ref).min() >= 0.999  # fp16 autocast
    gpu.cuda_dtype = None
    assert _cosine(gpu.embed_batch(pixels), ref).min() >= 0.99999  # fp32


def test_cuda_engine_decodes_in_processes_and_keeps_order(tmp_path):
    gpu = create_backbone("efficientnet-lite0", device="cuda")
    engine = local_engine(gpu)
    assert engine.processes and engine.batch_size >= 256
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    paths = [str(DEMO / r["image"]) for r in demo_rows()[:300]]
    paths.insert(150, str(bad))
    feats, errors, _ = embed_images(paths, gpu)
    assert list(errors) == [150]
    cpu = create_backbone("efficientnet-lite0", device="cpu")
    ref = cpu.embed_batch(decode_pixels(paths[:150] + paths[151:], cpu.info.image_size)[1])
    assert _cosine(np.delete(feats, 150, axis=0), ref).min() >= 0.999
