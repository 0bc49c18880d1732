from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest

from tests.conftest import DEMO, ROOT, demo_rows


def run(*args: str) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` in a new process: the entry point itself, exit codes included."""
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def run_here(*args: str) -> subprocess.CompletedProcess:
    """The same command line through :func:`core.cli.main` in this process: the same code and output,
    without a new process importing torch and the text encoder again (about 5 s a call here)."""
    from core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["python", "-m", "core", *args], code, out.getvalue(), err.getvalue())


def test_help_on_every_command():
    for cmd in ("fit", "predict", "evaluate", "zeroshot", "demo", "backbones"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage" in r.stdout


def test_evaluate_json_keys(fitted_workspace):
    r = run_here("evaluate", "--workspace", str(fitted_workspace), "--json")
    d = json.loads(r.stdout)
    assert set(d) == {"baseline", "multimodal", "text_only", "zeroshot", "n_test"}
    assert set(d["baseline"]) == {"top1", "top5", "macro_f1"} and d["n_test"] > 0


def test_predict_json_schema(fitted_workspace):
    img = next(r["image"] for r in demo_rows() if r["label"] == "animals/birds")
    r = run_here("predict", "--workspace", str(fitted_workspace), str(DEMO / img), "--json")
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)
    assert set(d) >= {"image", "phrases", "baseline", "multimodal"}
    assert {"phrase", "score"} == set(d["phrases"][0]) and {"label", "prob"} == set(d["baseline"][0])
    probs = [x["prob"] for x in d["multimodal"]]
    assert probs == sorted(probs, reverse=True)


def test_zeroshot_with_typed_labels(fitted_workspace):
    img = next(r["image"] for r in demo_rows() if r["label"] == "food/fruit")
    r = run_here(
        "zeroshot", "--workspace", str(fitted_workspace), "--labels", "fruit|apple,bird,music,truck", str(DEMO / img), "--json"
    )
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)
    assert {x["label"] for x in d["labels"]} == {"fruit", "bird", "music", "truck"}
    r = run_here(
        "zeroshot", "--workspace", str(fitted_workspace), "--labels", "birds,fruit,music,vehicles,flowers,weapons", "--json"
    )
    d = json.loads(r.stdout)
    assert d["n_scored"] > 0 and d["top1"] > 1 / 6


def test_errors_are_clear(tmp_path):
    r = run("evaluate", "--workspace", str(tmp_path))
    assert r.returncode == 2 and "not a fitted workspace" in r.stderr
    r = run("fit", str(tmp_path / "nothing"), "--workspace", str(tmp_path / "ws"))
    assert r.returncode == 2 and "dataset not found" in r.stderr


def test_fit_caption_keep_option_reaches_the_fit_config():
    from core.cli import _fit_config, build_parser

    fit = ["fit", "data", "--workspace", "ws"]
    assert _fit_config(build_parser().parse_args(fit)).captions.keep == "all"
    assert _fit_config(build_parser().parse_args([*fit, "--caption-keep", "cv"])).captions.keep == "cv"
    assert run_here(*fit, "--caption-keep", "some").returncode == 2  # argparse refuses it


def test_fit_refuses_a_label_fraction_outside_0_1_before_any_work(small_dataset, tmp_path):
    # before: -1 and 1.5 were taken silently (one label per label, or every label), NaN died with
    # "cannot convert float NaN to integer" after the features were computed
    for bad in ("-1", "0", "1.5", "nan"):
        r = run_here("fit", str(small_dataset), "--workspace", str(tmp_path / "ws"), f"--label-fraction={bad}")
        assert r.returncode == 2 and "label fraction must be a share in (0, 1]" in r.stderr, (bad, r.stderr)
    assert not (tmp_path / "ws").exists()


def test_evaluate_json_is_strict_json_without_a_test_split(cache_dir, tmp_path):
    """Every row in the training split: the metrics are undefined, and ``--json`` says ``null``
    (before: ``NaN``, which jq, JavaScript and every strict JSON parser refuse)."""
    from tests.conftest import SMALL_LABELS, edit_manifest, quick_fit, write_subset

    data = edit_manifest(write_subset(tmp_path / "data", SMALL_LABELS[:3], per_label=8), split="train")
    ws = quick_fit(data, tmp_path / "ws", cache_dir)

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(f"not JSON: {c}")))

    r = run_here("evaluate", "--workspace", str(ws.path), "--json")
    d = strict(r.stdout)
    assert d["n_test"] == 0 and d["baseline"]["top1"] is None
    r = run_here("evaluate", "--workspace", str(ws.path))
    assert r.returncode == 0 and "metrics are undefined" in r.stdout


@pytest.mark.slow  # a whole CLI fit each (about 40 s here)
@pytest.mark.parametrize(
    ("captions", "why"),
    [
        ({"text": "", "tags": ""}, "no image has a caption"),  # before: silently no caption models
        # every image labelled: no caption label (before: caption models that repeated baseline and multimodal)
        ({}, "gave no unlabelled training image a caption label"),
    ],
)
def test_fit_says_why_caption_labels_on_gave_no_caption_models(cache_dir, tmp_path, captions, why):
    from tests.conftest import SMALL_LABELS, edit_manifest, write_subset

    data = edit_manifest(write_subset(tmp_path / "data", SMALL_LABELS[:2], per_label=6), **captions)
    ws = tmp_path / "ws"
    fit = ["fit", str(data), "--workspace", str(ws), "--phrase-source", "imagenet", "--no-maps", "--cache-dir", str(cache_dir)]
    r = run_here(*fit, "--caption-labels", "on")
    assert r.returncode == 0, r.stderr
    assert why in r.stderr
    assert "baseline_captions" not in json.loads(run_here("evaluate", "--workspace", str(ws), "--json").stdout)


def test_counts_below_one_are_refused(fitted_workspace):
    # before: predict --top 0 printed empty lists, --top -2 all but two, labels queue --limit -1 one item
    img = str(DEMO / demo_rows()[0]["image"])
    for args in (
        ("predict", "--workspace", str(fitted_workspace), img, "--top", "0"),
        ("predict", "--workspace", str(fitted_workspace), img, "--top=-2"),
        ("labels", "queue", "--workspace", str(fitted_workspace), "--limit=-1"),
        ("fit", "data", "--workspace", "ws", "--batch-size", "0"),
    ):
        r = run_here(*args)
        assert r.returncode == 2 and "must be at least 1" in r.stderr, (args, r.stderr)
    r = run_here("predict", "--workspace", str(fitted_workspace), img, "--top", "1", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)[0]["baseline"]) == 1
