"""Backbone throughput per runtime and engine, on the same images in one run, with the top-1 each leaves.

Rows (``bench/results/throughput.json``): ``{runtime, precision, engine, workers, device, batch, stage,
images_per_s, top1_delta, cos_min}``.

- ``stage=backbone``: preprocessed images in memory through the forward pass only; torch eager,
  ONNX Runtime and OpenVINO (fp32), and an int8 model (ONNX Runtime static quantisation, QDQ,
  per-channel, calibrated on 64 training images) in both runtimes.
- ``stage=files``: image files -> features (read, decode, preprocess, forward), the local engine
  (decoding threads) with torch and the fastest runtime, and the Ray engine (local Ray) with 1 and 2
  backbone actors. Ray's rate is its steady state, from its first chunk back to the last (actor
  start-up, reported as ``startup_s``, is excluded); ``wall_images_per_s`` includes it.

``top1_delta`` (points): test top-1 of the product's visual-only classifier, trained once on torch
features of the training split (its first ``--train`` images), when the test features come from
this runtime, minus with torch's.
``cos_min``: the lowest per-image cosine between the runtime's features and torch's.

On a GPU (``--device cuda``, rows in ``bench/results/throughput_cuda.json``): the backbone stage in
fp32, fp16 and bf16 autocast (the product's default is fp16) and with fp16 weights, from uint8
pixels in host memory (normalised on the GPU); then ``stage=files``, files -> features end to end
through the product's engine (decoding in worker processes: the default, every core but two, and
more and fewer), over the demo's files repeated ``--repeat`` times, once at the default over
``--long-repeat`` times (a collection-sized run), and over 1024-px JPEG copies of them (photo-sized
files). Files are read once before (page cache warm). ``startup_s`` (to the first chunk back)
includes each spawned worker importing this script and torch; workers of ``python -m core`` skip the
main module and start in about half a second. ``top1_delta``/``cos_min`` compare with torch fp32 on the CPU, as above.

    python bench/throughput.py                                    # 256 images of the demo's test split
    python bench/throughput.py --data /path/to/tuxpaint --n 88     # a shared set's test split
    python bench/throughput.py --device cuda                      # on a GPU machine
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.backbones import Backbone, create_backbone  # noqa: E402
from core.classifiers import Classifier, ClassifierConfig  # noqa: E402
from core.data.images import decode_pixels, load_image  # noqa: E402
from core.data.manifest import load_dataset  # noqa: E402
from core.features import (  # noqa: E402
    FeatureCache,
    LocalEngine,
    cache_key,
    decode_for_backbone,
    default_cache_dir,
    embed_images,
    file_digest,
    local_engine,
)
from core.phrases.generator import l2n  # noqa: E402
from core.runtimes import available_runtimes, export_onnx, make_runner  # noqa: E402
from core.training import label_targets  # noqa: E402


def forward_rate(bb: Backbone, x: np.ndarray, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    """Best images/s over ``repeats`` passes (after one warm-up batch), and the features."""
    bb.embed_batch(x[:batch])
    best = 0.0
    feats = np.zeros((0,))
    for _ in range(repeats):
        t = time.perf_counter()
        feats = np.concatenate([bb.embed_batch(x[s : s + batch]) for s in range(0, len(x), batch)])
        best = max(best, len(x) / (time.perf_counter() - t))
    return best, feats


def int8_model(bb: Backbone, calibration: np.ndarray, folder: Path) -> Path:
    """ONNX Runtime static int8 quantisation (QDQ, per-channel, reduced range for AVX2 without VNNI)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": calibration[s : s + 8]} for s in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    fp32 = export_onnx(bb.export_module(), bb.name, bb.info.image_size, default_cache_dir())
    pre, out = folder / "pre.onnx", folder / "int8.onnx"
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return out


def ray_rate(paths: list[str], bb: Backbone, runtime: str, workers: int, batch: int) -> tuple[float, float, float, np.ndarray]:
    """(steady images/s, wall images/s, start-up s, features) of the Ray engine on ``paths`` (no cache)."""
    from core.engines import RayEngine

    engine = RayEngine(workers=workers, runtime=runtime, device="cpu", batch_size=batch, chunk_size=batch)
    t0 = time.perf_counter()
    first_t, first_n, n = None, 0, 0
    feats = np.zeros((len(paths), bb.dim), dtype=np.float32)
    for ok, chunk, errors in engine.chunks(paths, bb):
        feats[ok] = chunk
        n += len(ok) + len(errors)
        if first_t is None:
            first_t, first_n = time.perf_counter(), n
    end = time.perf_counter()
    steady = (n - first_n) / (end - first_t) if first_t is not None and end > first_t else 0.0
    return steady, n / (end - t0), (first_t or end) - t0, feats


class Bench:
    """The reference (torch fp32 on the CPU: features of the timed images and a classifier trained on
    features of the training split) and the rows measured against it, saved after every row."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        ds = load_dataset(args.data)
        items = ds.items
        self.test = items[items["split"] == "test"].head(args.n)
        train = items[items["split"] != "test"].head(args.train)
        self.all_paths = list(items["path"])
        self.torch_bb = create_backbone("efficientnet-lite0", device="cpu", runtime="torch")
        print(f"{len(self.test)} test images of {args.data}; load average {os.getloadavg()}", flush=True)
        cache = FeatureCache(default_cache_dir(), cache_key(self.torch_bb, None))
        train_feats, _, _ = embed_images(list(train["path"]), self.torch_bb, cache=cache)
        names = sorted({lab for labs in train["labels"] for lab in labs})
        y_train = label_targets(list(train["labels"]), names, False)
        self.y_test = label_targets(list(self.test["labels"]), names, False)
        self.clf = Classifier(len(names), False, ClassifierConfig(seed=0)).fit(l2n(train_feats), y_train)
        self.x = np.stack([decode_for_backbone(p, self.torch_bb.info)[0] for p in self.test["path"]])
        self.rows: list[dict] = []
        self.ref = np.zeros((0,))
        self.ref_top1 = 0.0

    def top1(self, feats: np.ndarray) -> float:
        known = self.y_test >= 0
        return float((self.clf.predict_proba(l2n(feats))[known].argmax(1) == self.y_test[known]).mean() * 100)

    def save(self, machine: str, reference: str) -> None:  # after every row: an interrupted run keeps what it measured
        base = next(r for r in self.rows if r["runtime"] == reference)
        best = max(
            (r for r in self.rows if r["stage"] == "backbone" and r["device"] == base["device"]), key=lambda r: r["images_per_s"]
        )
        meta = {
            "machine": machine,
            "data": str(self.args.data),
            "n_images": len(self.x),
            "load_average": os.getloadavg(),
            "best_runtime": f"{best['runtime']} {best['precision']} on {best['device']}",
            "best_over_torch": round(best["images_per_s"] / base["images_per_s"], 2),
            "reference": f"{base['runtime']} {base['precision']} on {base['device']}",
        }
        Path(self.args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(self.args.out).write_text(json.dumps({**meta, "rows": self.rows}, indent=2))

    def add(self, runtime: str, precision: str, engine: str, workers: int, stage: str, rate: float, feats, **extra) -> None:
        row = {
            "runtime": runtime, "precision": precision, "engine": engine, "workers": workers,
            "device": extra.pop("device", "cpu"), "batch": extra.pop("batch", self.args.batch), "stage": stage,
            "images_per_s": round(rate, 2),
            "top1_delta": None if feats is None else round(self.top1(feats) - self.ref_top1, 2),
            "cos_min": None if feats is None else round(float(cosine(feats, self.ref).min()), 6), **extra,
        }  # fmt: skip
        self.rows.append(row)
        print(
            f"{stage:9} {engine:6} {row['device']:4} w={workers:<2} b={row['batch']:<4} {runtime:12} {precision:11} "
            f"{rate:8.1f} img/s  top1 delta {row['top1_delta']}  cos_min {row['cos_min']}",
            flush=True,
        )


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def cpu_rows(b: Bench) -> None:
    """Torch eager vs each CPU runtime (fp32, int8), then files -> features locally and on Ray."""
    args = b.args
    machine = f"{platform.machine()}, {os.cpu_count()} cores (the 2-core CPU dev machine, shared)"

    def add(*a, **k) -> None:
        b.add(*a, **k)
        b.save(machine, "torch")

    rate, b.ref = forward_rate(b.torch_bb, b.x, args.batch, args.repeats)
    b.ref_top1 = b.top1(b.ref)
    add("torch", "fp32", "local", 1, "backbone", rate, b.ref, top1=round(b.ref_top1, 2))
    runtimes = [r for r in ("onnxruntime", "openvino") if r in available_runtimes()]
    for name in runtimes:
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=name)
        rate, feats = forward_rate(bb, b.x, args.batch, args.repeats)
        add(name, "fp32", "local", 1, "backbone", rate, feats)
    if not args.no_int8 and "onnxruntime" in runtimes:
        train = [p for p in b.all_paths if p not in set(b.test["path"])][:64]
        calib = np.stack([decode_for_backbone(p, b.torch_bb.info)[0] for p in train])
        with tempfile.TemporaryDirectory() as tmp:
            path = int8_model(b.torch_bb, calib, Path(tmp))
            for name in runtimes:
                bb = create_backbone("efficientnet-lite0", device="cpu", runtime="torch")
                bb._runner, bb.runtime = make_runner(name, path), name
                rate, feats = forward_rate(bb, b.x, args.batch, args.repeats)
                add(name, "int8", "local", 1, "backbone", rate, feats)
    fp32 = [r for r in b.rows if r["stage"] == "backbone" and r["precision"] == "fp32"]
    best = max(fp32, key=lambda r: r["images_per_s"])["runtime"]

    # files -> features: local engine, then Ray with 1 and 2 backbone actors
    paths = list(b.test["path"])
    for name in dict.fromkeys(("torch", best)):
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=name)
        t = time.perf_counter()
        feats, _, _ = embed_images(paths, bb, engine=LocalEngine(batch_size=args.batch, workers=2))
        add(name, "fp32", "local", 1, "files", len(paths) / (time.perf_counter() - t), feats)
    if not args.no_ray:
        from core.engines import start_ray

        start_ray(num_cpus=os.cpu_count())
        bb = create_backbone("efficientnet-lite0", device="cpu", runtime=best)
        for workers in (1, 2):
            steady, wall, startup, feats = ray_rate(paths, bb, best, workers, args.batch)
            extra = {"wall_images_per_s": round(wall, 2), "startup_s": round(startup, 1)}
            add(best, "fp32", "ray", workers, "files", steady, feats, **extra)

    ratio = max(r["images_per_s"] for r in fp32) / b.rows[0]["images_per_s"]
    print(f"best CPU runtime ({best}) / torch eager, same run: {ratio:.2f}x; load average {os.getloadavg()}")


def cuda_forward_rate(forward, pixels: np.ndarray, batch: int, repeats: int) -> tuple[float, np.ndarray]:
    """Best images/s of ``forward(uint8 batch) -> features`` over ``pixels`` (host memory), after a warm-up."""
    import torch

    forward(pixels[:batch])
    torch.cuda.synchronize()
    best, feats = 0.0, np.zeros((0,))
    for _ in range(repeats):
        t = time.perf_counter()
        feats = np.concatenate([forward(pixels[s : s + batch]) for s in range(0, len(pixels), batch)])
        best = max(best, len(pixels) / (time.perf_counter() - t))
    return best, feats


def files_rate(paths: list[str], bb: Backbone, engine: LocalEngine) -> tuple[float, float, float, np.ndarray]:
    """(steady images/s from the first chunk back, wall images/s, start-up s, features) of ``engine``
    on ``paths`` end to end (file hashes, reads, decoding, forward; no cache)."""
    t0 = time.perf_counter()
    first: list[tuple[float, int]] = []
    n = 0
    feats = np.zeros((len(paths), bb.dim), dtype=np.float32)
    for ok, chunk, errors in engine.chunks(paths, bb):
        feats[ok] = chunk
        n += len(ok) + len(errors)
        if not first:
            first.append((time.perf_counter(), n))
    end = time.perf_counter()
    t1, n1 = first[0]
    hashing = time.perf_counter()
    for p in paths:  # embed_images hashes every file first (the cache key): timed separately, added to the wall
        file_digest(p)
    hashing = time.perf_counter() - hashing
    wall = end - t0 + hashing
    steady = (n - n1) / (end - t1) if n > n1 and end > t1 else n / (end - t0)  # one chunk: no steady state
    return steady, n / wall, t1 - t0, feats


def photo_copies(paths: list[str], folder: Path, side: int = 1024) -> list[str]:
    """1024-px (long side) JPEG copies of ``paths`` (quality 90): photo-sized files of the same images."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    out = [str(folder / f"{i:06d}.jpg") for i in range(len(paths))]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_photo_copy, paths, out, [side] * len(paths), chunksize=32))
    return out


def _photo_copy(src: str, dst: str, side: int) -> None:
    from PIL import Image

    im = load_image(src)
    scale = side / max(im.size)
    im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC).save(dst, quality=90)


def cuda_rows(b: Bench) -> None:
    """The backbone on the GPU per precision, then files -> features end to end through the product's engine."""
    import torch

    args = b.args
    gpu = torch.cuda.get_device_name(0)
    machine = f"{gpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}"

    def add(*a, **k) -> None:
        b.add(*a, **k)
        b.save(machine, "torch")

    # the reference: torch fp32 on this machine's CPU
    t = time.perf_counter()
    b.ref = b.torch_bb.embed_batch(b.x)
    b.ref_top1 = b.top1(b.ref)
    add("torch", "fp32", "local", 1, "backbone", len(b.x) / (time.perf_counter() - t), b.ref, top1=round(b.ref_top1, 2))

    pixels = decode_pixels(list(b.test["path"]), b.torch_bb.info.image_size)[1]
    tiled = np.concatenate([pixels] * max(1, -(-args.gpu_images // len(pixels))))[: max(args.gpu_images, len(pixels))]
    n = len(pixels)
    bb = create_backbone("efficientnet-lite0", device="cuda")
    for label, dtype in (("fp32", None), ("fp16 autocast", torch.float16), ("bf16 autocast", torch.bfloat16)):
        bb.cuda_dtype = dtype
        for batch in (256, 1024):
            rate, feats = cuda_forward_rate(bb.embed_batch, tiled, batch, args.repeats)
            add("torch", label, "local", 1, "backbone", rate, feats[:n], device="cuda", batch=batch, n_timed=len(tiled))
    bb.cuda_dtype = torch.float16
    half = copy.deepcopy(bb.module).half()

    @torch.inference_mode()
    def half_forward(px: np.ndarray) -> np.ndarray:  # a candidate: fp16 weights, no autocast
        x = torch.from_numpy(px).to("cuda").permute(0, 3, 1, 2).float() / 255.0
        x = ((x - bb._mean) / bb._std).half().contiguous(memory_format=torch.channels_last)
        return bb._features(half, x).float().cpu().numpy()

    rate, feats = cuda_forward_rate(half_forward, tiled, 1024, args.repeats)
    add("torch", "fp16 weights", "local", 1, "backbone", rate, feats[:n], device="cuda", batch=1024, n_timed=len(tiled))

    # files -> features end to end: the demo's files repeated, then photo-sized JPEG copies
    test_pos = {p: i for i, p in enumerate(b.test["path"])}
    order = [test_pos[p] for p in b.all_paths if p in test_pos]
    at = [i for i, p in enumerate(b.all_paths) if p in test_pos]

    def files_row(paths: list[str], workers: int, what: str, scored: bool = True) -> None:
        engine = local_engine(bb, args.gpu_batch)
        engine.workers = workers
        steady, wall, startup, feats = files_rate(paths, bb, engine)
        test_feats = np.zeros_like(b.ref)
        test_feats[order] = feats[at]
        add(
            "torch", "fp16 autocast", "local", workers, "files", steady, test_feats if scored else None,
            device="cuda", batch=engine.batch_size,
            files=what, n_timed=len(paths), wall_images_per_s=round(wall, 2), startup_s=round(startup, 1),
        )  # fmt: skip

    repeated = b.all_paths * args.repeat
    cores = os.cpu_count() or 2
    for p in b.all_paths:  # the page cache warm for every row: a cold disk is the storage's speed, not the engine's
        file_digest(p)
    for workers in sorted({max(1, cores // 2), *(max(1, cores - d) for d in (4, 3, 2, 1))}):
        files_row(repeated, workers, f"the demo's {len(b.all_paths)} files (WebP, <= 256 px) x {args.repeat}")
    default = local_engine(bb).workers
    if args.long_repeat:  # a collection-sized run at the product's default: start-up amortised as it would be
        files_row(b.all_paths * args.long_repeat, default, f"the demo's {len(b.all_paths)} files x {args.long_repeat}")
    with tempfile.TemporaryDirectory() as tmp:
        photos = photo_copies(b.all_paths, Path(tmp))
        what = f"1024-px JPEG copies of the demo's files x {args.photo_repeat}"
        files_row(photos * args.photo_repeat, default, what, scored=False)  # re-encoded: not the reference's pixels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "assets" / "demo"), help="dataset with a train/test split")
    ap.add_argument("--n", type=int, default=256, help="test images timed (and scored)")
    ap.add_argument("--train", type=int, default=1024, help="training images of the reference classifier")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--gpu-images", type=int, default=8192, help="CUDA: images per timed backbone pass (the test images tiled)")
    ap.add_argument("--gpu-batch", type=int, default=256, help="CUDA: the engine's batch size")
    ap.add_argument("--repeat", type=int, default=8, help="CUDA: times the dataset's files are gone through end to end")
    ap.add_argument("--long-repeat", type=int, default=40, help="CUDA: the same, once, at the default workers (0: skip)")
    ap.add_argument("--photo-repeat", type=int, default=4, help="CUDA: times the photo-sized copies are gone through")
    ap.add_argument("--out", default=None, help="default: bench/results/throughput.json (throughput_cuda.json on CUDA)")
    args = ap.parse_args()
    name = "throughput.json" if args.device == "cpu" else "throughput_cuda.json"
    args.out = args.out or str(ROOT / "bench" / "results" / name)
    bench = Bench(args)
    (cpu_rows if args.device == "cpu" else cuda_rows)(bench)
    print(f"wrote {args.out}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
