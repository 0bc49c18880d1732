"""The fit's phrase input past memory: extracting every image's phrases, counting the vocabulary and
building the image x phrase incidence, as Python lists against Arrow columns, in fresh processes.

The corpus has the shape of ``bench/generator_scale.py``'s: about ``--phrases`` distinct phrases,
``phrases / 5`` images, each tagged with its label (one of 42), one of 50 sub-cluster phrases of its
label and 10 phrases drawn from a pool of ``1.15 * --phrases`` (phrases are words: a tag ending on
a number would lose it). Each image's text is empty and its tags are these phrases, so the
extraction (:func:`core.phrases.vocab.extract_phrases`) is the pipeline's. Two paths, each in a
fresh process on the same input (read from a parquet file, as Python strings, as the pipeline's
items hold them):

* **lists** (what every fit did before, and still does up to ``GeneratorConfig.on_disk_above``
  phrases): a list of phrase lists, ``PhraseVocabulary.build`` (a ``Counter`` and a sort) and
  ``incidence`` (a dict look-up per occurrence);
* **arrow** (past the threshold): :func:`core.phrases.occurrences.extract_fit_phrases` (Arrow
  columns, extracted 50,000 images at a time), the vocabulary counted, sorted and filtered in Arrow,
  the incidence by one Arrow hash join.

Reported: seconds of extraction and of vocabulary + incidence, the process's peak resident memory
(``VmHWM``) above what it held once the input was read, and a digest of the vocabulary (phrases,
counts, softmax) and of the incidence (its CSR arrays): the two paths must give the same.

Writes ``bench/results/vocab_scale.json``.

    python bench/vocab_scale.py --phrases 1000000 5000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _status(key: str) -> float:
    """A ``/proc/self/status`` memory line in GiB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(ln.split()[1]) for ln in lines if ln.startswith(key)) / 2**20


def _word(j: np.ndarray) -> list[str]:
    """Distinct lower-case words for integers (base 26)."""
    out = []
    for v in j.tolist():
        w = ""
        while True:
            w = chr(97 + v % 26) + w
            v //= 26
            if not v:
                break
        out.append(w)
    return out


def write_corpus(n_phrases: int, seed: int, path: Path) -> int:
    """The input (module docstring) as a parquet file of ``text`` and ``tags``; returns the images."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_images, pool = max(1000, n_phrases // 5), round(1.15 * n_phrases)
    lab, sub, rare = rng.integers(0, 42, n_images), rng.integers(0, 50, n_images), rng.integers(0, pool, (n_images, 10))
    labels, groups, words = _word(np.arange(42) + 1000), _word(np.arange(50) + 20000), _word(np.arange(pool) + 30000)
    tags = [
        [f"label {labels[k]}", f"{labels[k]} group {groups[s]}", *(f"phrase {words[j]}" for j in r)]
        for k, s, r in zip(lab.tolist(), sub.tolist(), rare.tolist())
    ]
    pq.write_table(pa.table({"text": [""] * n_images, "tags": tags}), path)
    return n_images


def _digest(vocab, inc) -> dict[str, str]:
    import pyarrow as pa

    v = hashlib.sha1()
    for s in range(0, len(vocab), 1_000_000):
        v.update(pa.array(vocab.phrases[s : s + 1_000_000], type=pa.large_string()).buffers()[2] or b"")
    v.update(np.asarray(vocab.counts, dtype=np.int64).tobytes() + np.asarray(vocab.softmax, dtype=bool).tobytes())
    i = hashlib.sha1()
    for a in (inc.indptr.astype(np.int64), inc.indices.astype(np.int64), inc.data):
        i.update(a.tobytes())
    return {"vocab_sha1": v.hexdigest(), "incidence_sha1": i.hexdigest()}


def probe(path: Path, mode: str) -> dict:
    """In a fresh process: one path's extraction, vocabulary and incidence (see the module docstring)."""
    import pyarrow.parquet as pq

    from core.config import GeneratorConfig
    from core.phrases.occurrences import extract_fit_phrases
    from core.phrases.vocab import PhraseVocabulary, extract_phrases

    table = pq.read_table(path)
    texts, tags = table.column("text").to_pylist(), table.column("tags").to_pylist()
    del table
    cfg = GeneratorConfig()
    base = _status("VmRSS")
    t = time.perf_counter()
    above = cfg.on_disk_above if mode == "arrow" else None  # None: lists, whatever their size (the old path)
    phrases = extract_fit_phrases(texts, tags, above, extract_phrases)
    extract_s, t = time.perf_counter() - t, time.perf_counter()
    vocab = PhraseVocabulary.build(phrases, min_images_softmax=cfg.min_images_softmax, max_df=cfg.max_df)
    inc = vocab.incidence(phrases)
    build_s = time.perf_counter() - t
    peak = _status("VmHWM") - base
    n_occ = inc.nnz
    return {"mode": mode, "images": len(texts), "occurrences": int(n_occ), "vocabulary": len(vocab),
            "extract_s": extract_s, "vocab_incidence_s": build_s, "added_peak_gib": peak,
            "input_gib": base, **_digest(vocab, inc)}  # fmt: skip


COLUMNS = [
    ("phrases", "vocabulary", "{:,}"), ("images", "images", "{:,}"), ("occurrences", "occurrences", "{:,}"),
    ("path", "mode", "{}"), ("extraction s", "extract_s", "{:.1f}"), ("vocabulary + incidence s", "vocab_incidence_s", "{:.1f}"),
    ("peak above input GiB", "added_peak_gib", "{:.2f}"), ("same result", "same", "{}"),
]  # fmt: skip


def markdown(rows: list[dict]) -> str:
    """The rows as docs/results.md's table."""
    lines = ["| " + " | ".join(c[0] for c in COLUMNS) + " |", "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(fmt.format(r[key]) for _, key, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phrases", type=int, nargs="+", default=[1_000_000], help="vocabulary sizes (about)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vocab_scale.json"))
    ap.add_argument("--markdown", action="store_true", help="print the recorded rows as a table and exit")
    ap.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)  # internal: parquet path, mode
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(probe(Path(args.probe[0]), args.probe[1])))
        return
    path = Path(args.out)
    if args.markdown:
        print(markdown(json.loads(path.read_text())["rows"]))
        return
    import pyarrow as pa

    rows = [r for r in json.loads(path.read_text())["rows"] if r["n_phrases"] not in args.phrases] if path.is_file() else []
    for n in args.phrases:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "corpus.parquet"
            write_corpus(n, args.seed, data)
            found = []
            for mode in ("lists", "arrow"):
                load = os.getloadavg()[0]
                done = subprocess.run(
                    [sys.executable, __file__, "--probe", str(data), mode], check=True, capture_output=True, text=True
                )
                found.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"n_phrases": n, "load_average_1m": load})
                print(json.dumps(found[-1]), flush=True)
            same = all(found[0][k] == found[1][k] for k in ("vocab_sha1", "incidence_sha1"))
            rows += [r | {"same": same} for r in found]
            rows.sort(key=lambda r: (r["n_phrases"], r["mode"] != "lists"))
        meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": 1, "pyarrow": pa.__version__}
        path.write_text(json.dumps(meta | {"rows": rows}, indent=1))  # after each size: survives an interruption
    print(markdown(rows))


if __name__ == "__main__":
    main()
