"""Build the embedded demo dataset ``assets/demo/`` from Debian's Open Clip Art packages.

Get the packages (public-domain dedication) and unpack them, then run this script::

    apt-get update && apt-get download openclipart-png openclipart-svg
    for f in openclipart-*.deb; do dpkg -x "$f" oca; done
    python scripts/build_demo_dataset.py oca/usr/share/openclipart --out assets/demo

Labels are the category folders: ``top/sub`` where the sub-folder holds enough images, else
``top``; folders that are not picture content (icon themes, buttons, shapes, flags, LED
digits, map symbols, card decks, patterns, logos, "unsorted") are left out. Text is the SVG's
``dc:title`` + ``dc:description``; tags are its ``dc:subject`` keywords. Cleaning removes only
what is clearly not about the picture (see :func:`clean_text`). Images are composited on
white, downscaled to at most 128 px and saved as WebP.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # trusted Debian package; a few drawings were exported very large

EXCLUDED = (
    "buttons",
    "computer/buttons",
    "computer/icons",
    "computer/connectors",
    "computer/diagrams",
    "computer/folders",
    "computer/network",
    "logos",
    "shapes",
    "special",
    "unsorted",
    "signs_and_symbols/flags",
    "signs_and_symbols/led",
    "signs_and_symbols/map_symbols",
    "recreation/games/cards",
    "transportation/aiga-symbols",
)
NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}
CLEAN_RULES = [
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "e-mail addresses"),
    (re.compile(r"https?://\S+|www\.\S+"), "URLs"),
    (re.compile(r"\b(19|20)\d\d[-/.](0?[1-9]|1[0-2])[-/.]\d{1,2}\b|\b\d{1,2}[-/.]\d{1,2}[-/.](19|20)\d\d\b"), "dates"),
    (re.compile(r"part of the [^.]*? collection\.?", re.I), "'Part of the ... collection' boilerplate"),
    (re.compile(r"^\s*clip ?art by [^-]+ - ", re.I), "'Clipart by AUTHOR - ' prefixes"),
    (
        re.compile(r"\b(created|drawn|made) (with|in|using) (inkscape|sodipodi|illustrator|xara)[^.]*\.?", re.I),
        "'created with Inkscape' boilerplate",
    ),
]
GENERIC_TAGS = {"hash", "clip art", "clipart", "image", "media", "png", "svg", "public domain"}


def clean_text(text: str) -> str:
    """Remove e-mail addresses, URLs, dates and tool/collection boilerplate; collapse whitespace."""
    for rx, _ in CLEAN_RULES:
        text = rx.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip(" .,;-") if text.strip() else ""


def svg_metadata(svg: Path) -> tuple[str, str, list[str]]:
    """(title, description, keywords) of an Open Clip Art SVG's cc:Work."""
    try:
        root = ET.parse(svg).getroot()
    except (ET.ParseError, OSError):
        return "", "", []
    # Open Clip Art uses both the old (web.resource.org/cc/) and new Creative Commons namespaces.
    work = next((el for el in root.iter() if el.tag.endswith("}Work")), None)
    if work is None:
        return "", "", []
    title = (work.findtext("dc:title", default="", namespaces=NS) or "").strip()
    desc = (work.findtext("dc:description", default="", namespaces=NS) or "").strip()
    tags = [(li.text or "").strip() for li in work.findall("dc:subject//rdf:li", NS)]
    return title, desc, [t for t in tags if t and t.lower() not in GENERIC_TAGS]


def category(rel: Path) -> tuple[str, ...] | None:
    """Folder parts of a PNG path, or None for excluded folders."""
    parts = rel.parts[:-1]
    joined = "/".join(parts)
    if not parts or any(joined == e or joined.startswith(e + "/") for e in EXCLUDED):
        return None
    return parts


def to_rgb_thumbnail(path: Path, max_side: int) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
    bg.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return bg


def stratified_split(rows: list[dict], seed: int = 0, test_fraction: float = 0.2) -> None:
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: r["image"])
        rng.shuffle(group)
        n_test = max(1, round(test_fraction * len(group)))
        for i, r in enumerate(group):
            r["split"] = "test" if i < n_test else "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("openclipart", type=Path, help="unpacked usr/share/openclipart (holds png/ and svg/)")
    ap.add_argument("--out", type=Path, default=Path("assets/demo"))
    ap.add_argument("--min-sub", type=int, default=25, help="images a sub-folder needs to be its own label")
    ap.add_argument("--min-class", type=int, default=15, help="labels with fewer images are dropped")
    ap.add_argument("--max-side", type=int, default=128)
    ap.add_argument("--quality", type=int, default=80, help="WebP quality")
    args = ap.parse_args()
    png_root, svg_root = args.openclipart / "png", args.openclipart / "svg"

    # A drawing filed in several categories is one file plus symlinks: keep it once, under its
    # own folder when that is picture content, else under the first linking folder that is.
    by_real: dict[Path, list[Path]] = defaultdict(list)
    for png in sorted(png_root.rglob("*.png")):
        by_real[png.resolve()].append(png)
    candidates = []
    excluded = links = 0
    for real, paths in sorted(by_real.items()):
        links += len(paths) - 1
        own = [p for p in paths if not p.is_symlink()]
        chosen = None
        for png in own + [p for p in paths if p.is_symlink()]:
            parts = category(png.relative_to(png_root))
            if parts is not None:
                chosen = (png, parts)
                break
        if chosen is None:
            excluded += 1
            continue
        png, parts = chosen
        candidates.append((real, png.relative_to(png_root), parts))
    sub_counts = Counter("/".join(p[:2]) for _, _, p in candidates if len(p) >= 2)

    def label_of(parts: tuple[str, ...]) -> str:
        if len(parts) >= 2 and sub_counts["/".join(parts[:2])] >= args.min_sub:
            return "/".join(parts[:2])
        return parts[0]

    seen_md5: set[str] = set()
    rows, no_svg, dupes, no_text, same_picture = [], 0, 0, 0, 0
    seen_thumbs: set[str] = set()
    cleaned = Counter()
    for png, rel, parts in candidates:
        digest = hashlib.md5(png.read_bytes()).hexdigest()
        if digest in seen_md5:
            dupes += 1
            continue
        seen_md5.add(digest)
        svg = (svg_root / rel.with_suffix(".svg")).resolve()
        if not svg.is_file():
            no_svg += 1
            continue
        title, desc, tags = svg_metadata(svg)
        raw = f"{title} {desc}"
        text = clean_text(f"{title}. {desc}" if desc and desc != title else title)
        for rx, what in CLEAN_RULES:
            if rx.search(raw):
                cleaned[what] += 1
        if not text and not tags:
            no_text += 1
            continue
        buf = io.BytesIO()
        to_rgb_thumbnail(png, args.max_side).save(buf, "WEBP", quality=args.quality, method=6)
        thumb = buf.getvalue()
        thumb_digest = hashlib.md5(thumb).hexdigest()
        if thumb_digest in seen_thumbs:  # different files, same picture (e.g. only metadata differs)
            same_picture += 1
            continue
        seen_thumbs.add(thumb_digest)
        rows.append(
            {
                "thumb": thumb,
                "png": png,
                "rel": rel,
                "label": label_of(parts),
                "text": text,
                "tags": ";".join(dict.fromkeys(tags)),
            }
        )
    counts = Counter(r["label"] for r in rows)
    dropped = {lab: n for lab, n in counts.items() if n < args.min_class}
    rows = [r for r in rows if r["label"] not in dropped]

    out_images = args.out / "images"
    out_images.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for r in rows:
        stem = re.sub(r"[^a-z0-9]+", "-", r["rel"].with_suffix("").as_posix().lower()).strip("-")
        name, n = f"{stem}.webp", 1
        while name in names:  # "a_b.png" and "a-b.png" slug alike
            n += 1
            name = f"{stem}-{n}.webp"
        names.add(name)
        (out_images / name).write_bytes(r["thumb"])
        r["image"] = f"images/{name}"
        r["folder"] = r["rel"].parent.as_posix()
    stratified_split(rows)
    rows.sort(key=lambda r: r["image"])
    with (args.out / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "label", "text", "tags", "split", "folder"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in w.fieldnames})

    final = Counter(r["label"] for r in rows)
    size = sum(p.stat().st_size for p in out_images.iterdir())
    provenance = {
        "packages": ["openclipart-png 1:0.18+dfsg-19", "openclipart-svg 1:0.18+dfsg-19"],
        "source": "Debian bookworm main; Open Clip Art Library 0.18",
        "licence": "Public domain dedication (Open Clip Art Library; see debian/copyright of the packages)",
        "excluded_folders": list(EXCLUDED),
        "rules": {
            "min_sub": args.min_sub,
            "min_class": args.min_class,
            "max_side": args.max_side,
            "format": f"WebP quality {args.quality}",
            "split": "stratified 80/20, random.Random(0)",
        },
        "counts": {
            "png_files": len(candidates) + excluded + links,
            "drawings": len(by_real),
            "symlinked_copies": links,
            "excluded_by_folder": excluded,
            "byte_duplicates": dupes,
            "identical_thumbnails": same_picture,
            "without_svg": no_svg,
            "without_text_or_tags": no_text,
            "dropped_small_labels": dropped,
            "images": len(rows),
            "labels": len(final),
            "train": sum(r["split"] == "train" for r in rows),
            "test": sum(r["split"] == "test" for r in rows),
            "images_bytes": size,
        },
        "cleaned_rows": dict(cleaned),
        "per_label": dict(sorted(final.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2))
    print(json.dumps(provenance["counts"], indent=2))
    print(f"{len(final)} labels, {sum(n >= 25 for n in final.values())} with 25+ images")
    for lab, n in provenance["per_label"].items():
        print(f"{n:5d}  {lab}")


if __name__ == "__main__":
    main()
