"""Command line: ``python -m core COMMAND ...`` (``python -m core --help`` lists them; ``--help`` on each)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from core.cli_common import positive_int
from core.jsonio import strict_json


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    from core.captions import CaptionLabelConfig
    from core.config import default

    p.add_argument(
        "--backbone",
        default=default("backbone"),
        help="visual backbone (default: %(default)s; see `python -m core backbones`)",
    )
    p.add_argument("--backbone-weights", default=None, help="local checkpoint for the backbone (.safetensors or state dict)")
    p.add_argument(
        "--text-model",
        default=default("text_model"),
        help="sentence-transformers name or local path (default: packaged %(default)s)",
    )
    p.add_argument(
        "--phrase-source",
        default=default("phrase_source"),
        help="corpus: generator trained on the dataset's text (default); imagenet: the backbone's ImageNet-1k head; "
        "corpus+imagenet: both; "
        "or the folder of a generator saved by `python -m core phrases fit`",
    )
    p.add_argument(
        "--generator-backbone", default=None, help="second backbone the phrase generator also sees (e.g. efficientnet-lite2)"
    )
    p.add_argument(
        "--label-fraction",
        type=float,
        default=default("label_fraction"),
        help="keep labels for this share of each label's training images; the rest keep their text only",
    )
    p.add_argument("--seed", type=int, default=default("seed"))
    p.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    _add_runtime_option(p)
    p.add_argument("--engine", default="local", choices=["local", "ray"], help="local: this process; ray: image features on Ray")
    p.add_argument("--ray-address", default=None, help="Ray cluster to join (default: start a local Ray)")
    p.add_argument(
        "--batch-size", type=positive_int, default=default("batch_size"), help="backbone batch size (default: %(default)s)"
    )
    p.add_argument("--no-maps", action="store_true", help="skip the 2-D UMAP maps")
    p.add_argument(
        "--sample-above",
        type=lambda v: None if v.lower() == "none" else int(v),
        default=default("sample_above"),
        help="above this many phrases: the zero-shot mapper and the map on a seeded sample of this many, and only the "
        "phrases images use embedded ('none': never; default: %(default)s)",
    )
    p.add_argument("--cache-dir", default=None, help="feature cache (default: $PIXCTX_CACHE_DIR or ~/.cache/pixctx)")
    p.add_argument(
        "--caption-labels",
        default=default("caption_labels"),
        choices=["auto", "on", "off"],
        help="also train baseline_captions / multimodal_captions on human labels + labels read from the unlabelled "
        "training images' captions (auto, the default: when at least 20%% of the training images with text are unlabelled)",
    )
    p.add_argument(
        "--caption-keep",
        default=CaptionLabelConfig().keep,
        choices=["all", "cv"],
        help="which caption labels the caption models train on: all (the default: measured better) or cv (only those "
        "above the confidence threshold chosen by cross-validation on the labelled images)",
    )


def _add_runtime_option(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument(
        "--runtime",
        default=default,
        choices=["auto", "torch", "openvino", "onnxruntime"],
        help="what runs the backbone (auto: the fastest installed on this device)" + ("" if default else "; default: the fit's"),
    )


def _fit_config(args: argparse.Namespace):
    from core.captions import CaptionLabelConfig
    from core.config import FitConfig

    return FitConfig(
        backbone=args.backbone,
        backbone_weights=args.backbone_weights,
        text_model=args.text_model,
        phrase_source=args.phrase_source,
        generator_backbone=args.generator_backbone,
        label_fraction=args.label_fraction,
        seed=args.seed,
        device=args.device,
        runtime=args.runtime,
        engine=args.engine,
        ray_address=args.ray_address,
        batch_size=args.batch_size,
        projections=not args.no_maps,
        sample_above=args.sample_above,
        cache_dir=args.cache_dir,
        caption_labels=args.caption_labels,
        captions=CaptionLabelConfig(keep=args.caption_keep),
    )


def _print_metrics(ws) -> None:
    metrics = ws.metrics
    keys = list(next(iter(metrics.values())).keys())
    print(f"{'model':<20}" + "".join(f"{k:>12}" for k in keys))
    for m in ws.models:
        print(f"{m:<20}" + "".join(f"{metrics[m][k]:>12.3f}" if math.isfinite(metrics[m][k]) else f"{'—':>12}" for k in keys))
    print(f"test images: {ws.manifest['n_test']}, labelled training images: {ws.manifest['n_labelled']}")
    if not ws.manifest["n_test"]:
        print("no labelled test image of a label the models know: the metrics are undefined (give some rows split=test)")


def _maybe_job(args: argparse.Namespace, plan):
    """With ``--job``: run as the workspace's background job (status in ``WS.job/``); else a no-op."""
    from core.jobs import optional_job

    return optional_job(args.workspace, plan, args.job)


def cmd_fit(args: argparse.Namespace) -> int:
    from core.jobs import fit_plan
    from core.pipeline import fit

    data = args.data
    if args.format != "auto":
        from core.data import load_dataset

        data = load_dataset(args.data, seed=args.seed, format=args.format)
    cfg = _fit_config(args)
    with _maybe_job(args, fit_plan(cfg.n_folds, generator=cfg.phrase_source != "imagenet", maps=cfg.projections)) as prog:
        ws = fit(data, args.workspace, cfg, progress=prog)
    for issue in ws.issues:
        print(f"skipped: {issue}", file=sys.stderr)
    if cfg.caption_labels == "on" and not ws.manifest.get("captions"):
        print("note: --caption-labels on, but no image has a caption (text or tags): no caption models", file=sys.stderr)
    elif cfg.caption_labels == "on" and not ws.manifest["captions"]["n_caption_labels"]:
        from core.captions import NO_CAPTION_LABELS

        print(f"note: --caption-labels on, but {NO_CAPTION_LABELS}: no caption models", file=sys.stderr)
    print(
        f"workspace: {ws.path} ({ws.manifest['dataset']['n_items']} images, {len(ws.issues)} skipped, "
        f"{ws.manifest['timings_s']['total']:.0f} s)"
    )
    _print_metrics(ws)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.workspace import open_workspace

    ws = open_workspace(args.workspace, runtime=args.runtime)
    results = ws.predict([Path(p) for p in args.images], names=list(args.images), top=args.top)
    status = 0 if all(r.ok for r in results) else 1
    if args.json:
        print(json.dumps([r.to_dict(args.top) for r in results], indent=2))
        return status
    for r in results:
        if not r.ok:
            print(f"error: {r.image}: {r.error}", file=sys.stderr)
            continue
        print(r.image)
        print("  phrases:    " + "; ".join(f"{p} ({s:.2f})" for p, s in r.phrases[: args.top]))
        print("  baseline:   " + "; ".join(f"{label} {p:.2f}" for label, p in r.baseline[: args.top]))
        print("  multimodal: " + "; ".join(f"{label} {p:.2f}" for label, p in r.multimodal[: args.top]))
    return status


def cmd_predict_batch(args: argparse.Namespace) -> int:
    from core.batch import predict_batch
    from core.progress import TqdmProgress

    n = predict_batch(
        args.workspace,
        args.data,
        args.out,
        engine=args.engine,
        ray_address=args.ray_address,
        runtime=args.runtime,
        device=args.device,
        batch_size=args.batch_size,
        progress=TqdmProgress(),
    )
    print(f"predictions for {n} images: {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.workspace import open_workspace

    ws = open_workspace(args.workspace)
    if args.json:
        print(strict_json({**ws.metrics, "n_test": ws.manifest["n_test"]}))
    else:
        _print_metrics(ws)
    return 0


def cmd_zeroshot(args: argparse.Namespace) -> int:
    import numpy as np

    from core.compare import zeroshot_images
    from core.metrics import evaluate
    from core.workspace import open_workspace
    from core.zeroshot import match_labels, parse_label_spec

    ws = open_workspace(args.workspace)
    labels = parse_label_spec(args.labels)
    if len(labels) < 2:
        print("error: give at least two labels, e.g. --labels 'cat|kitten,dog,car'", file=sys.stderr)
        return 2
    names = [n for n, _ in labels]
    if args.images:
        proba, errors = zeroshot_images(ws, [str(Path(p)) for p in args.images], labels)
        out = []
        for i, img in enumerate(args.images):
            if i in errors:
                out.append({"image": img, "error": errors[i]})
                continue
            order = np.argsort(-proba[i])[:5]
            out.append({"image": img, "labels": [{"label": names[j], "prob": float(proba[i, j])} for j in order]})
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            for o in out:
                print(o["image"] + ": " + (o.get("error") or "; ".join(f"{d['label']} {d['prob']:.2f}" for d in o["labels"])))
        return 0 if not errors else 1
    # no images: classify the test split and score the labels that exist in the dataset
    items = ws.items
    test = items["is_test"].to_numpy()
    proba = ws.zeroshot_rows(labels, np.flatnonzero(test))
    match = match_labels(names, ws.labels)
    pos = match.matched
    truth = np.array([pos.get(labs[0], -1) if len(labs) else -1 for labs in items["labels"][test]])
    known = truth >= 0
    result = {"labels": names, "n_test": int(test.sum()), "n_scored": int(known.sum()), "ambiguous": match.ambiguous}
    if known.any():
        result.update(evaluate(truth[known], proba[known], multilabel=False))
    print(strict_json(result) if args.json else result)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import demo_workspace, demo_workspace_path
    from core.jobs import fit_plan

    args.workspace = args.workspace or str(demo_workspace_path(args.label_fraction))
    with _maybe_job(args, fit_plan(extras=True)) as prog:
        ws = demo_workspace(args.workspace, label_fraction=args.label_fraction, refit=args.refit, progress=prog)
    print(f"demo workspace: {ws.path}")
    _print_metrics(ws)
    return 0


def cmd_phrases_fit(args: argparse.Namespace) -> int:
    from core.corpus import fit_corpus_generator

    gen = fit_corpus_generator(
        args.data,
        args.out,
        backbone=args.backbone,
        generator_backbone=args.generator_backbone,
        include_test=args.include_test,
        device=args.device,
        cache_dir=args.cache_dir,
    )
    print(f"phrase generator: {args.out} ({len(gen.vocab):,} phrases, {len(gen.class_ids):,} softmax classes)")
    print(f"use it with: python -m core fit DATA --workspace WS --phrase-source {args.out}")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from core.backbones import list_backbones

    print("\n".join(list_backbones()))
    return 0


def _add_workspace_commands(sub) -> None:
    """``predict``, ``predict-batch``, ``evaluate``, ``zeroshot``: commands that use a fitted workspace."""
    from core.config import default

    p = sub.add_parser("predict", help="phrases and labels for images", description="Run the fitted pipeline on images.")
    p.add_argument("--workspace", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top", type=positive_int, default=5, help="phrases/labels shown per image")
    p.add_argument("--json", action="store_true")
    _add_runtime_option(p, default=None)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "predict-batch",
        help="predictions for a whole collection, to parquet shards",
        description="Predict every image of a dataset or image folder and write parquet shards (one row per image).",
    )
    p.add_argument("--workspace", required=True)
    p.add_argument("data", help="dataset (manifest or folder) or image folder")
    p.add_argument("--out", required=True, help="new folder for the parquet shards")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--ray-address", default=None, help="Ray cluster to join (default: start a local Ray)")
    p.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=positive_int, default=default("batch_size"), help="backbone batch size")
    _add_runtime_option(p, default=None)
    p.set_defaults(func=cmd_predict_batch)

    p = sub.add_parser("evaluate", help="test-split metrics of every model")
    p.add_argument("--workspace", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "zeroshot",
        help="classify with label names only",
        description=(
            "Zero-shot classification with typed labels ('name|synonym|..., name2, ...'). With images: their top labels; "
            "without: accuracy on the test split for the labels that exist in the dataset."
        ),
    )
    p.add_argument("--workspace", required=True)
    p.add_argument("--labels", required=True, help="comma-separated labels, synonyms after '|'")
    p.add_argument("images", nargs="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_zeroshot)


def _add_phrases_parser(sub) -> None:
    """``phrases fit``: reusable phrase generators."""
    from core.config import default

    p = sub.add_parser("phrases", help="reusable phrase generators")
    psub = p.add_subparsers(dest="phrases_command", required=True)
    q = psub.add_parser(
        "fit",
        help="fit a phrase generator on the text of one or more datasets",
        description="Fit a phrase generator on every row with text (labelled or not) of one or more datasets, "
        "and save it for `fit --phrase-source FOLDER`.",
    )
    q.add_argument("data", nargs="+", help="datasets (manifests or folders)")
    q.add_argument("--out", required=True, help="folder to write the generator to")
    q.add_argument("--backbone", default=default("backbone"))
    q.add_argument("--generator-backbone", default=None, help="second backbone the generator also sees")
    q.add_argument("--include-test", action="store_true", help="also learn from rows marked test")
    q.add_argument("--device", default=default("device"), choices=["auto", "cpu", "cuda"])
    q.add_argument("--cache-dir", default=None)
    q.set_defaults(func=cmd_phrases_fit)


def build_parser() -> argparse.ArgumentParser:
    from core.jobs import add_job_option

    parser = argparse.ArgumentParser(
        prog="pixctx" if Path(sys.argv[0]).name == "pixctx" else "python -m core",
        description="Multimodal image classification that infers context from pixels.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "fit", help="fit a workspace on a dataset", description="Fit every model on a dataset (manifest or image folder)."
    )
    p.add_argument("data", help="manifest (.csv/.jsonl), folder with manifest.csv, or image folder (sub-folder = label)")
    p.add_argument("--workspace", required=True, help="output folder")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", "manifest", "folder", "fiftyone", "imagefolder", "parquet", "coco", "labelstudio"],
        help="dataset format (default: sniffed; see core.formats.FORMATS)",
    )
    _add_fit_options(p)
    add_job_option(p)
    p.set_defaults(func=cmd_fit)

    _add_workspace_commands(sub)

    p = sub.add_parser("demo", help="fit (once) and open the embedded demo workspace")
    p.add_argument(
        "--workspace", default=None, help="where to keep it (default: $PIXCTX_DEMO_WORKSPACE or ~/.cache/pixctx/demo-workspace)"
    )
    p.add_argument("--refit", action="store_true", help="fit again even if it exists")
    p.add_argument(
        "--label-fraction",
        type=float,
        default=1.0,
        help="keep labels for this share of each label's training images, seed 0 (the app's second demo uses 0.1; "
        "its folder gets -labels10 appended)",
    )
    add_job_option(p)
    p.set_defaults(func=cmd_demo)

    _add_phrases_parser(sub)

    p = sub.add_parser("backbones", help="list backbone names")
    p.set_defaults(func=cmd_backbones)

    from core.labels.cli import add_labels_parser
    from core.predictions_cli import add_predictions_parser
    from core.retrieval.cli import add_retrieval_parser
    from core.tags.cli import add_tags_parser

    add_labels_parser(sub)
    add_predictions_parser(sub)
    add_retrieval_parser(sub)
    add_tags_parser(sub)
    return parser


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:  # WorkspaceError, WorkspaceBusyError included
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run one command line; its exit status. A reader that stops early (``| head -1``) ends it with
    status 1 and no traceback (the Python docs' "Note on SIGPIPE" pattern)."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # what is still buffered fails here, not at exit
        return status
    except BrokenPipeError:
        # the rest of the output would fail at exit again: send it to devnull instead
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
