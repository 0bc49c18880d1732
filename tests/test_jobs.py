"""Background jobs: the status file (overall fraction, measured ETA), the lock, stop and resume."""

from __future__ import annotations

import json

import pytest

from core import jobs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch, tmp_path) -> Clock:
    c = Clock()
    monkeypatch.setattr(jobs.time, "time", c)
    monkeypatch.setenv("PIXCTX_CACHE_DIR", str(tmp_path / "cache"))
    return c


def _run_stage(prog: jobs.JobProgress, clock: Clock, name: str, total: int, seconds: float) -> None:
    for done in range(total + 1):
        prog(name, done, total)
        clock.now += seconds / total


def test_overall_fraction_and_eta_come_from_measured_rates(tmp_path, clock):
    plan = jobs.fit_plan(n_folds=2, maps=False)
    prog = jobs.JobProgress(tmp_path, plan, ["fit"])
    prog("embed images", 0, 1000)
    assert prog.overview()["fraction"] == 0.0
    clock.now += 10.0
    prog("embed images", 500, 1000)  # half the images in 10 s: 10 s more for this stage
    view = prog.overview()
    assert view["group"] == "embed images" and 0.0 < view["fraction"] < 1.0
    # the rest of the plan is scaled by this run's own pace against the profile (here: 10 s for 500 images)
    profile = jobs.load_profile()
    pace = 20.0 / (profile["embed images"] * 1000)
    rest = sum(profile[g] for g in ("phrase generator", "embed phrases", "classifiers")) * 1000 * pace
    assert view["eta_s"] == pytest.approx(10.0 + rest, rel=0.01)
    clock.now += 10.0
    prog("embed images", 1000, 1000)
    for stage in ("phrase generator (all text)", "phrase generator (fold 1/2)", "phrase generator (fold 2/2)"):
        _run_stage(prog, clock, stage, 4, 3.0)
    mid = prog.overview()
    assert mid["fraction"] > view["fraction"]
    _run_stage(prog, clock, "embed phrases", 2, 1.0)
    _run_stage(prog, clock, "classifiers", 3, 3.0)
    assert prog.overview()["fraction"] == pytest.approx(1.0)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["stage"] == "classifiers" and status["done"] == 3 and status["total"] == 3


def test_job_lock_outcome_and_profile(tmp_path, clock):
    ws = tmp_path / "ws"
    plan = jobs.fit_plan(n_folds=0, generator=False)
    with jobs.job(ws, plan) as prog:
        assert jobs.is_running(ws)
        with pytest.raises(jobs.JobRunningError), jobs.job(ws, plan):
            pass
        _run_stage(prog, clock, "embed images", 10, 5.0)
        assert jobs.read_status(ws)["state"] == "running"
    assert not jobs.is_running(ws)
    status = jobs.read_status(ws)
    assert status["state"] == "done" and status["fraction"] == 1.0 and status["eta_s"] is None
    assert jobs.load_profile()["embed images"] == pytest.approx(0.5, rel=0.05)  # this machine's measurement is kept

    with pytest.raises(ValueError), jobs.job(ws, plan) as prog:
        prog("embed images", 1, 10)
        raise ValueError("no image could be decoded")
    status = jobs.read_status(ws)
    assert status["state"] == "failed" and "no image could be decoded" in status["error"]


def test_a_job_that_died_reads_as_stopped_and_resumes_its_command(tmp_path):
    ws = tmp_path / "ws"
    folder = jobs.job_dir(ws)
    folder.mkdir()
    (folder / "status.json").write_text(json.dumps({"state": "running", "command": ["backbones"], "fraction": 0.4}))
    status = jobs.read_status(ws)
    assert status["state"] == "stopped"  # nobody holds the lock
    proc = jobs.resume(ws)  # a detached `python -m core backbones`
    assert proc is not None and proc.wait(timeout=120) == 0
    assert "efficientnet-lite0" in (folder / "log.txt").read_text()


def test_a_stage_served_from_the_cache_counts_as_done(tmp_path, clock):
    prog = jobs.JobProgress(tmp_path, jobs.fit_plan(n_folds=5, maps=False), ["fit"])
    _run_stage(prog, clock, "embed images", 100, 1.0)  # cached features: fast
    before = prog.overview()["fraction"]
    _run_stage(prog, clock, "embed phrases", 10, 10.0)  # the phrase generator came from the stage cache: no report
    view = prog.overview()
    profile = jobs.load_profile()
    done = sum(profile[g] for g in ("embed images", "phrase generator", "embed phrases"))
    total = done + profile["classifiers"]
    assert view["fraction"] == pytest.approx(done / total, abs=1e-3) and view["fraction"] > before
    assert view["eta_s"] is not None  # paced by the stage that did real work


def test_an_add_on_job_has_no_eta_until_it_has_measured_its_own_pace(tmp_path, clock):
    prog = jobs.JobProgress(tmp_path, jobs.search_plan(), ["retrieval", "fit"])
    prog.n_images = 2500  # an add-on job names its images (it has no "embed images" stage)
    prog("semantic embedding (V)", 1, 40)
    clock.now += 1.0
    prog("semantic embedding (V)", 2, 40)
    assert prog.overview()["eta_s"] is None  # the profile alone is no measurement ("measuring speed…")
    clock.now += 9.0
    prog("semantic embedding (V)", 10, 40)  # 10 s for a quarter of the first of two parts: 70 s to go
    assert prog.overview()["eta_s"] == pytest.approx(70.0, rel=0.01)


def test_tag_models_fit_as_a_job_reports_one_overall_progress(fitted_workspace, tmp_path):
    import shutil

    from core.cli import main
    from core.tags.annotate import has_tag_models
    from core.workspace import open_workspace

    ws = tmp_path / "ws"  # a copy: the job writes the workspace
    shutil.copytree(fitted_workspace, ws)
    assert main(["tags", "fit", "--workspace", str(ws), "--epochs", "1", "--job"]) == 0
    status = jobs.read_status(ws)
    assert status["state"] == "done" and status["fraction"] == 1.0 and status["plan"] == ["tag models"]
    assert status["n_images"] == len(open_workspace(ws).items)  # known without an "embed images" stage
    assert {jobs.stage_group(s["name"]) for s in status["stages"]} == {"tag models"}  # every step counts
    assert has_tag_models(open_workspace(ws))
