from __future__ import annotations

import numpy as np

from core.backbones import create_backbone
from core.data.images import decode_pixels
from core.features import FeatureCache, LocalEngine, decode_for_backbone, embed_images
from tests.conftest import DEMO, demo_rows


def test_cache_reuses_and_resumes(tmp_path):
    bb = create_backbone("efficientnet-lite0", device="cpu")
    paths = [str(DEMO / r["image"]) for r in demo_rows()[:10]]
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    cache = FeatureCache(tmp_path / "c", "lite0")
    first, errors, digests = embed_images([*paths[:6], str(bad)], bb, cache=cache, engine=LocalEngine(chunk_size=4))
    assert list(errors) == [6] and "not a decodable image" in errors[6]
    assert all(len(d) == 20 for d in digests)
    shards = sorted((tmp_path / "c" / "features" / "lite0").glob("*.safetensors"))
    assert len(shards) == 2  # one per chunk: an interruption loses at most a chunk
    # a fresh process (new cache object) only computes the 4 missing images
    seen = []
    cache2 = FeatureCache(tmp_path / "c", "lite0")
    full, errors2, _ = embed_images(paths, bb, cache=cache2, progress=lambda s, d, t: seen.append(d))
    assert not errors2 and seen[0] == 6
    assert np.allclose(full[:6], first[:6], atol=1e-6)
    assert len(list((tmp_path / "c" / "features" / "lite0").glob("*.safetensors"))) == 3


def test_decoding_in_worker_processes_gives_the_same_features(tmp_path):
    """The CUDA path decodes in processes; the features and the reasons for bad files are the same."""
    bb = create_backbone("efficientnet-lite0", device="cpu")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    paths = [*(str(DEMO / r["image"]) for r in demo_rows()[:5]), str(bad)]
    threads, err_t, _ = embed_images(paths, bb, engine=LocalEngine(workers=2))
    procs, err_p, _ = embed_images(paths, bb, engine=LocalEngine(workers=2, processes=True))
    assert err_t == err_p and list(err_p) == [5]
    assert np.allclose(threads, procs, atol=1e-6) and np.abs(procs[:5]).sum() > 0


def test_engine_decodes_ahead_and_keeps_each_image_in_its_place(tmp_path):
    """Chunks decoded ahead of the forward pass (several tasks per chunk, a bad file mid-way) come back
    in order, each image with the features of its own file, uint8 pixels or normalised floats alike."""
    bb = create_backbone("efficientnet-lite0", device="cpu")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    paths = [str(DEMO / r["image"]) for r in demo_rows()[:40]]
    paths.insert(21, str(bad))
    engine = LocalEngine(batch_size=8, chunk_size=24, workers=2, prefetch=1)
    feats, errors, _ = embed_images(paths, bb, engine=engine)
    assert list(errors) == [21]
    ref = np.stack([decode_for_backbone(p, bb.info)[0] for p in paths[:21] + paths[22:]])
    expected = bb.embed_batch(ref)
    assert np.allclose(np.delete(feats, 21, axis=0), expected, atol=1e-5)
    assert not feats[21].any()
    pixels = decode_pixels(paths[:3], bb.info.image_size)[1]
    assert pixels.dtype == np.uint8 and np.allclose(bb.embed_batch(pixels), expected[:3], atol=1e-5)
