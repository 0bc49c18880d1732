from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.backbones import create_backbone, list_backbones
from core.data.images import load_image
from tests.conftest import DEMO, demo_rows


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet-lite0", device="cpu")


def test_registry_lists_offline_and_hub_families():
    names = list_backbones()
    assert "efficientnet-lite0" in names and "efficientnet-lite2" in names
    assert any(n.startswith("timm:") for n in names)
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("resnet-9000")


def test_lite0_features_and_imagenet_head_on_real_images(lite0):
    rows = [r for r in demo_rows() if r["label"] == "food/fruit"][:4]
    x = np.stack([lite0.preprocess(load_image(DEMO / r["image"])) for r in rows])
    assert x.shape == (4, 3, 224, 224)
    f = lite0.embed_batch(x)
    assert f.shape == (4, 1280) and np.isfinite(f).all()
    logits = lite0.imagenet_logits(f)
    assert logits.shape == (4, 1000)
    # ImageNet fruit classes (Granny Smith ... banana, 948-954; lemon/orange/fig/pineapple/strawberry 949-953,
    # pomegranate 957) should rank high for drawings of fruit
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert np.isin(top5, list(range(940, 960))).any(1).mean() >= 0.5


def test_local_checkpoint_loads_and_matches(lite0, tmp_path):
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0.module.state_dict().items()}, str(path))
    other = create_backbone("efficientnet-lite0", weights=path, device="cpu")
    x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    assert np.allclose(other.embed_batch(x), lite0.embed_batch(x), atol=1e-5)
    bad = tmp_path / "bad.pt"
    torch.save({"not": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="does not match"):
        create_backbone("efficientnet-lite0", weights=bad, device="cpu")


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_hub_family_without_package_gives_a_helpful_error():
    with pytest.raises(ImportError, match="pip install timm"):
        create_backbone("timm:resnet50", device="cpu")


def test_cuda_request_without_gpu_is_clear():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        create_backbone("efficientnet-lite0", device="cuda")
