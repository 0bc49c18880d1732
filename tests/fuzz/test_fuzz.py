"""Run the decoder fuzz target for a fixed time (20 s): it must end without finding a crash."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SECONDS = 20


@pytest.mark.slow  # SECONDS of fuzzing
def test_decoders_survive_fuzzing(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install -r requirements-dev.txt)")
    target = ROOT / "tests" / "fuzz" / "fuzz_decoders.py"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed.csv").write_bytes(b"image,label,text\nimages/a.png,cat,a cat\n")
    demo_image = next((ROOT / "assets" / "demo" / "images").iterdir())
    (corpus / demo_image.name).write_bytes(demo_image.read_bytes())
    proc = subprocess.run(
        [sys.executable, str(target), f"-max_total_time={SECONDS}", "-rss_limit_mb=2048", "-timeout=10", str(corpus)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "Done" in tail and "crash-" not in tail, tail
