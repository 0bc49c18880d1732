"""The workspace fit's stages after the phrase generator at many phrases: every phrase against a sample.

Above ``FitConfig.sample_above`` phrases (default 200,000) the zero-shot mapper is fitted on a
seeded uniform sample of the phrases and the 2-D map lays out a sample of the distinct prototypes
(:func:`core.zeroshot.fit_mapper`, :func:`core.pipeline.map_prototype_ids`); Explore's phrase filter
searches the vocabulary's Arrow column (:class:`core.phrases.substring.PhraseFilter`). This
benchmark measures each on synthetic data of ``--phrases`` phrases, in a fresh process per step
(time and the process's peak resident memory, ``VmHWM``, which counts the mapped files' pages it
read; and, in a second run, the peak of what numpy and Python allocated, by ``tracemalloc``, plus
Arrow's memory pool's),
against the same step over every phrase in the same run ("all": ``sample_above=None``, which is
what the fit did before; for the filter, the earlier code: every phrase normalised into a Python
list once, then a scan per query):

* **mapper**: ``fit_mapper`` on memory-mapped files of ``(V, 64)`` unit prototypes (5% zero rows,
  phrases without images) and ``(V, 384)`` unit text embeddings (random: the timing and the memory
  do not depend on the values).
* **map**: the rows the map lays out read from the mapped prototypes, then UMAP of them with
  ``--images`` image points (:func:`core.projection.umap_2d`: fitted on 30,000 points, the others
  placed by ``transform``). The "all" map runs only up to ``--map-all-max`` phrases (UMAP's
  ``transform`` of every prototype is what makes it slow: its rate is printed), and only at the
  ``--map-at`` phrase counts (a sample costs the same at any count above ``--sample-above``).
* **text** (with ``--text-rate N``): MiniLM's phrases per second over ``N`` of the vocabulary's
  phrases (what embedding every phrase of a vocabulary costs, against only those the images use).
* **filter**: a vocabulary file (``vocab.arrow``) of ``V`` phrases of 1-3 words (1% with an accent),
  opened memory-mapped; the filter's first use (what a session pays once) and ``--queries`` queries.

Writes ``bench/results/fit_scale.json`` (one row per ``n_phrases``, ``step`` and ``path``).

    python bench/fit_scale.py --phrases 1000000 2000000 --map-at 1000000  # about 25 minutes

With ``--workspace WS`` it instead measures, on a real fitted workspace, what a sample costs the
zero-shot mapper: zero-shot top-1 on the test rows with the mapper fitted on every phrase and on
samples of ``--quality-sizes`` phrases (``--quality-seeds``), and the mean cosine of every phrase's
mapped text embedding to its prototype::

    python bench/fit_scale.py --workspace ~/.cache/pixctx/demo-workspace --out bench/results/fit_scale_mapper_demo.json

With ``--fit DATA`` it fits DATA twice, with every phrase and with ``--sample-above`` lowered, and
writes each fit's test metrics, stage times, phrases embedded and prototypes mapped::

    python bench/fit_scale.py --fit assets/demo --sample-above 1000 --out bench/results/fit_scale_fit_demo.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["sun", "red car", "ca", "night sky", "café", "blue w", "ing", "zzz"]


def _peak_gib() -> float:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(ln.split()[1]) for ln in lines if ln.startswith("VmHWM")) / 2**20


def _unit_blocks(n: int, dim: int, seed: int, zero_every: int = 0, block: int = 65_536):
    """Blocks of ``n`` random unit rows (every ``zero_every``-th row zero)."""
    rng = np.random.default_rng(seed)
    for s in range(0, n, block):
        x = rng.standard_normal((min(block, n - s), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        if zero_every:
            x[(np.arange(s, s + len(x)) % zero_every) == 0] = 0.0
        yield x


def make_data(n: int, folder: Path, seed: int) -> None:
    """``arrays.safetensors`` (prototypes, text embeddings) and ``vocab.arrow`` of ``n`` phrases in ``folder``."""
    sys.path.insert(0, str(ROOT))
    from core.phrases.vocab_file import write_vocab_file
    from core.safetensors_mmap import Streamed, save_streamed

    save_streamed(
        folder / "arrays.safetensors",
        {
            "prototypes": Streamed(np.dtype(np.float32), (n, 64), _unit_blocks(n, 64, seed, zero_every=20)),
            "text": Streamed(np.dtype(np.float32), (n, 384), _unit_blocks(n, 384, seed + 1)),
        },
    )
    rng = np.random.default_rng(seed)
    syll = ["sun", "set", "red", "car", "night", "sky", "blue", "wave", "ing", "ter", "mo", "la", "ri", "ka", "po", "de"]
    words = np.array(list(dict.fromkeys("".join(rng.choice(syll, size=rng.integers(1, 4))) for _ in range(30_000))))
    lengths = rng.integers(1, 4, size=n)
    picks = words[rng.integers(0, len(words), size=int(lengths.sum()))]
    cuts = np.concatenate([[0], np.cumsum(lengths)])
    phrases = [" ".join(picks[cuts[i] : cuts[i + 1]]) for i in range(n)]
    for i in range(0, n, 100):
        phrases[i] = phrases[i] + " café"
    phrases = [f"{p} {i}" for i, p in enumerate(phrases)]  # distinct phrases (digits are kept by normalize)
    write_vocab_file(folder / "vocab.arrow", phrases, np.ones(n, np.int64), np.zeros(n, bool))


def _rss_anon_gib() -> float:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(ln.split()[1]) for ln in lines if ln.startswith("RssAnon")) / 2**20


def child(step: str, path: str, folder: Path, sample_above: int, images: int, seed: int, trace: bool) -> dict:
    """One step in this (fresh) process: seconds and peak memory (with ``trace``, only the peak of
    what numpy and Python allocated, by ``tracemalloc``: memory-mapped file pages are not counted)."""
    sys.path.insert(0, str(ROOT))
    if trace:
        import tracemalloc

        tracemalloc.start()
    from core.safetensors_mmap import load_mmap

    arrays = load_mmap(folder / "arrays.safetensors")
    limit = None if path == "all" else sample_above
    out: dict = {}
    t = time.perf_counter()
    if step == "mapper":
        from core.zeroshot import fit_mapper

        fit_mapper(arrays["text"], arrays["prototypes"], sample_above=limit, seed=seed)
    elif step == "map":
        from core.pipeline import map_prototype_ids
        from core.projection import umap_2d

        n = len(arrays["prototypes"])
        output_ids = np.flatnonzero(np.arange(n) % 20 != 0)  # the non-zero (all distinct) prototypes
        ids = map_prototype_ids(output_ids, limit, seed)
        protos = arrays["prototypes"][ids]
        out["read_s"] = time.perf_counter() - t
        coemb = next(_unit_blocks(images, 64, seed + 2, block=images))
        u = time.perf_counter()
        umap_2d(np.concatenate([protos, coemb]), seed=seed)
        out["umap_s"] = time.perf_counter() - u
        out["mapped"] = len(ids)
        out["transform_per_s"] = (len(ids) + images - 30_000) / out["umap_s"] if len(ids) + images > 30_000 else None
    elif step == "filter":
        from core.phrases.substring import PhraseFilter
        from core.phrases.vocab import normalize
        from core.phrases.vocab_file import read_vocab_file

        column, _, _ = read_vocab_file(folder / "vocab.arrow")  # opened by the workspace in both: not timed
        t = time.perf_counter()
        if path == "all":  # the earlier Explorer: every phrase normalised into a list, then a scan per query
            normalized = [normalize(p) for p in column]
            out["first_use_s"] = time.perf_counter() - t
            u = time.perf_counter()
            hits = [len([j for j, p in enumerate(normalized) if normalize(q) in p]) for q in QUERIES]
        else:
            f = PhraseFilter(column)
            out["first_use_s"] = time.perf_counter() - t
            u = time.perf_counter()
            hits = [len(f.containing(q)) for q in QUERIES]
        out["query_s"] = (time.perf_counter() - u) / len(QUERIES)
        out["hits"] = hits
    elif step == "text":  # MiniLM's rate over this many of the vocabulary's phrases (path: their count)
        from core.phrases.vocab_file import read_vocab_file
        from core.text import TextEncoder

        column, _, _ = read_vocab_file(folder / "vocab.arrow")
        texts = column[: int(path)]
        encoder = TextEncoder(device="cpu")
        encoder.encode(texts[:256])  # warm
        t = time.perf_counter()
        encoder.encode(texts)
        out["phrases_per_s"] = len(texts) / (time.perf_counter() - t)
    out["seconds"] = time.perf_counter() - t
    out["peak_gib"] = _peak_gib()
    out["rss_anon_end_gib"] = _rss_anon_gib()
    if trace:  # plus the peak of Arrow's own memory pool (its buffers are not Python's)
        arrow = sys.modules["pyarrow"].default_memory_pool().max_memory() if "pyarrow" in sys.modules else 0
        return {"allocated_peak_gib": (tracemalloc.get_traced_memory()[1] + arrow) / 2**30}
    return out


def mapper_quality(workspace: Path, sizes: list[int], seeds: list[int]) -> list[dict]:
    """Zero-shot top-1 on a real workspace's test rows with the mapper fitted on every phrase
    (``size`` None) and on samples of ``size`` phrases; the mean cosine of the map of every
    phrase's text embedding to its own prototype (most phrases are outside a sample); and how many
    phrases the images' text vectors use (what a fit past the threshold embeds)."""
    sys.path.insert(0, str(ROOT))
    from core.phrases.combined import used_phrase_ids
    from core.workspace import open_workspace
    from core.zeroshot import fit_mapper, label_embeddings, label_terms, zero_shot_scores

    ws = open_workspace(workspace)
    gen = ws.generator
    emb = np.asarray(ws.phrase_embeddings[: len(gen.vocab)])
    labels = [(n, []) for n in ws.labels]
    test = ws.items["is_test"].to_numpy()
    y = np.array([ws.labels.index(ls[0]) for ls in ws.items["labels"][test]])
    has = np.abs(gen.prototypes).sum(1) > 0
    via_mapper = sum(  # labels with a term placed by the mapper (not a vocabulary phrase with a prototype)
        any(gen.vocab.index.get(t) is None or not has[gen.vocab.index[t]] for t in label_terms(n)) for n, _ in labels
    )
    rows = []
    for size, seed in [(None, 0)] + [(s, seed) for s in sizes for seed in seeds]:
        mapper = fit_mapper(emb, gen.prototypes, sample_above=size, seed=seed)
        terms = label_embeddings(
            labels, vocab_index=gen.vocab.index, prototypes=gen.prototypes, embed_text=ws.text_encoder.encode, mapper=mapper
        )
        top1 = float((zero_shot_scores(ws.coembedding[test], terms).argmax(1) == y).mean())
        cos = float((mapper(emb[has]) * gen.prototypes[has]).sum(1).mean())
        rows.append({"phrases": len(gen.vocab), "sample": size, "seed": seed, "zeroshot_top1": top1, "phrase_cosine": cos})
        rows[-1].update(labels_with_a_mapped_term=via_mapper, labels=len(labels), test_images=int(test.sum()), images=len(test))
        rows[-1]["phrases_used"] = len(
            used_phrase_ids(np.asarray(ws.phrase_ids), top_k=ws.config.top_k, combined=ws.source.combined)
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def fit_both(data: Path, size: int, seed: int) -> list[dict]:
    """A real workspace fit of ``data`` with every phrase (``sample_above=None``) and with the
    threshold lowered to ``size``: each model's test metrics, stage seconds, phrases embedded and
    prototypes mapped."""
    sys.path.insert(0, str(ROOT))
    from core.config import FitConfig
    from core.pipeline import fit
    from core.progress import silent

    rows = []
    with tempfile.TemporaryDirectory(prefix="pixctx-fit-scale-") as tmp:
        for limit in (None, size):
            ws = fit(data, Path(tmp) / f"ws-{limit}", FitConfig(seed=seed, sample_above=limit), progress=silent)
            a = ws.arrays
            embedded = len(a["phrase_embeddings"]) if "phrase_embeddings" in a else len(a["phrase_embedding_ids"])
            rows.append(
                {
                    "data": str(data),
                    "sample_above": limit,
                    "seed": seed,
                    "phrases": ws.manifest["n_phrases"],
                    "phrases_embedded": embedded,
                    "map_prototypes": ws.manifest["map_prototypes"],
                    "metrics": ws.metrics,
                    "timings_s": ws.manifest["timings_s"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _run(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phrases", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--sample-above", type=int, default=200_000)
    ap.add_argument("--images", type=int, default=5_000)
    ap.add_argument("--map-all-max", type=int, default=400_000)
    ap.add_argument("--map-at", type=int, nargs="*", help="phrase counts the map is measured at (default: every one)")
    ap.add_argument("--text-rate", type=int, default=0, help="also measure MiniLM's phrases/s over this many phrases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workspace", help="instead: the mapper's zero-shot quality on this workspace, every phrase vs samples")
    ap.add_argument("--fit", help="instead: fit this dataset with every phrase and with --sample-above, and compare")
    ap.add_argument("--quality-sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "fit_scale.json"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--trace", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit:
        rows = fit_both(Path(args.fit), args.sample_above, args.seed)
        Path(args.out).write_text(json.dumps({"rows": rows}, indent=2))
        print(f"wrote {args.out}")
        return
    if args.workspace:
        rows = mapper_quality(Path(args.workspace), args.quality_sizes, args.quality_seeds)
        Path(args.out).write_text(json.dumps({"workspace": args.workspace, "rows": rows}, indent=2))
        print(f"wrote {args.out}")
        return
    if args.child or args.trace:
        step, path = args.child or args.trace
        print(json.dumps(child(step, path, Path(args.folder), args.sample_above, args.images, args.seed, bool(args.trace))))
        return
    rows = []
    for n in args.phrases:
        with tempfile.TemporaryDirectory(prefix="pixctx-fit-scale-") as tmp:
            t = time.perf_counter()
            make_data(n, Path(tmp), args.seed)
            print(f"{n:,} phrases: data written in {time.perf_counter() - t:.0f} s", flush=True)
            for step in ("mapper", "map", "filter"):
                for path in ("all", "sample"):
                    if step == "map" and (n not in (args.map_at or args.phrases) or (path == "all" and n > args.map_all_max)):
                        continue
                    common = ["--folder", tmp, "--sample-above", str(args.sample_above), "--images", str(args.images)]
                    common += ["--seed", str(args.seed)]
                    r = _run("--child", step, path, *common)
                    if step != "map":  # a second run for what it allocates (tracemalloc slows it: not timed)
                        r.update(_run("--trace", step, path, *common))
                    rows.append({"n_phrases": n, "step": step, "path": path, **r})
                    print(json.dumps(rows[-1]), flush=True)
            if args.text_rate and n == args.phrases[0]:
                rows.append(
                    {
                        "n_phrases": n,
                        "step": "text",
                        "path": "rate",
                        **_run("--child", "text", str(args.text_rate), "--folder", tmp),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'phrases':>10} {'step':>7} {'path':>7} {'seconds':>8} {'peak GiB':>9} {'allocated GiB':>14}")
    for r in rows:
        alloc = f"{r['allocated_peak_gib']:.2f}" if "allocated_peak_gib" in r else "-"
        print(f"{r['n_phrases']:>10,} {r['step']:>7} {r['path']:>7} {r['seconds']:>8.2f} {r['peak_gib']:>9.2f} {alloc:>14}")
    meta = {
        "machine": f"{platform.machine()}, 2-core CPU dev machine (shared), one thread",
        "sample_above": args.sample_above,
        "images": args.images,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
