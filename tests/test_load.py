"""A short load test of the served app (real HTTP + WebSocket sessions on loopback): see bench/load_test.py."""

from __future__ import annotations

import pytest

from bench.load_test import run_load


@pytest.mark.slow
def test_concurrent_sessions_browse_and_label_without_loss(fitted_workspace, tmp_path):
    report = run_load(fitted_workspace, sessions=3, seconds=45, log_dir=tmp_path)
    assert report["server_alive_at_end"], report
    assert report["errors"] == [], report
    assert report["labels_acknowledged"] > 0 and report["labels_missing_from_store"] == [], report
    assert report["runs"]["detail"] >= 1 and report["image_bytes_fetched"] > 0, report
    assert report["server_rss_mb"]["second_half_max"] < 2_000
