"""Build the embedded demo dataset ``assets/demo/`` from Debian's Open Clip Art packages.

Get the packages (public-domain dedication) and unpack them, then run this script::

    apt-get update && apt-get download openclipart-png openclipart-svg
    for f in openclipart-*.deb; do dpkg -x "$f" oca; done
    python scripts/build_demo_dataset.py oca/usr/share/openclipart --out assets/demo

Labels are the category folders: ``top/sub`` where the sub-folder holds enough images, else
``top``; folders that are not picture content (icon themes, buttons, shapes, flags, LED
digits, map symbols, card decks, patterns, logos, "unsorted") are left out. Text is the SVG's
``dc:title`` + ``dc:description``; tags are its ``dc:subject`` keywords. Cleaning removes only
what is clearly not about the picture (see :func:`clean_text` and :func:`clean_tags`). Images
are composited on white, downscaled to at most 256 px and saved as WebP.

Left out, besides the folders: byte-identical files, drawings whose 128-px thumbnails are
identical (a fixed size, so ``--max-side`` never changes which drawings are kept), drawings with
neither text nor tags, and **"Linked Image Not Found" placeholders**: drawings whose SVG links
a raster file the package does not ship, so the renderer drew Inkscape's placeholder (a red
square with a white X above that text) instead (:func:`shows_missing_image_placeholder`).
Placeholders are dropped after the split, so every other drawing keeps the split it has had
since the first build.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

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
    (re.compile(r"<[^<>]*>"), "HTML tags"),
    (
        re.compile(r"this work is hereby released into the public domain\..*?usa\.?", re.I | re.S),
        "'released into the Public Domain' licence boilerplate",
    ),
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
# Tags that are ids, not keywords: Perl's HASH(0x8a3ecd4), bare hex ids, bare numbers ("11").
ID_TAG = re.compile(r"(hash\()?0x[0-9a-f]+\)?|\d+", re.I)
DEDUP_SIDE = 128  # drawings with identical thumbnails at this size are one picture
PLACEHOLDER_SIDE = 512  # resolution at which placeholders are looked for


def clean_text(text: str) -> str:
    """Decode HTML entities; remove HTML tags, e-mail addresses, URLs, dates and tool, licence and
    collection boilerplate; collapse whitespace."""
    text = html.unescape(text)
    for rx, _ in CLEAN_RULES:
        text = rx.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip(" .,;-") if text.strip() else ""


def clean_tags(tags: list[str], author: str) -> list[str]:
    """Tags without generic words, ids (``hash(0x…)``, hex, bare numbers) and the author's own name."""
    out = []
    for t in tags:
        t = html.unescape(t).strip()
        if t and t.lower() not in GENERIC_TAGS and not ID_TAG.fullmatch(t) and t.lower() != author.lower():
            out.append(t)
    return list(dict.fromkeys(out))


def svg_metadata(svg: Path) -> tuple[str, str, list[str], str]:
    """(title, description, keywords, author) of an Open Clip Art SVG's cc:Work."""
    try:
        root = ET.parse(svg).getroot()
    except (ET.ParseError, OSError):
        return "", "", [], ""
    # Open Clip Art uses both the old (web.resource.org/cc/) and new Creative Commons namespaces.
    work = next((el for el in root.iter() if el.tag.endswith("}Work")), None)
    if work is None:
        return "", "", [], ""
    title = (work.findtext("dc:title", default="", namespaces=NS) or "").strip()
    desc = (work.findtext("dc:description", default="", namespaces=NS) or "").strip()
    tags = [(li.text or "").strip() for li in work.findall("dc:subject//rdf:li", NS)]
    author = (work.findtext("dc:creator//dc:title", default="", namespaces=NS) or "").strip()
    return title, desc, tags, author


def category(rel: Path) -> tuple[str, ...] | None:
    """Folder parts of a PNG path, or None for excluded folders."""
    parts = rel.parts[:-1]
    joined = "/".join(parts)
    if not parts or any(joined == e or joined.startswith(e + "/") for e in EXCLUDED):
        return None
    return parts


def on_white(path: Path) -> Image.Image:
    """The PNG composited on white, full size."""
    with Image.open(path) as im:
        im.load()
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, mask=im.getchannel("A"))
    return bg


def thumbnail(image: Image.Image, max_side: int) -> Image.Image:
    out = image.copy()
    out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return out


def webp(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality, method=6)
    return buf.getvalue()


# Inkscape's missing-image placeholder: a red square (pure red, or pink where drawn translucent)
# with a white X from about 28% to 72% of each side, above the words "Linked Image Not Found".
_CELLS = 16
_cy, _cx = (np.mgrid[0:_CELLS, 0:_CELLS] + 0.5) / _CELLS
PLACEHOLDER_X = (
    (np.minimum(np.abs(_cy - _cx), np.abs(_cy + _cx - 1)) < 0.08) & (np.abs(_cy - 0.5) < 0.24) & (np.abs(_cx - 0.5) < 0.24)
)


def shows_missing_image_placeholder(image: Image.Image) -> bool:
    """Whether ``image`` (RGB on white) shows Inkscape's "Linked Image Not Found" placeholder.

    Looks for its red square with a white X, at any size and stretch, even partly covered by
    the drawing's own strokes: every roughly square blob of pure-red-tint pixels (R = 255, G = B;
    the placeholder is pink where drawn translucent) is cut into 16 x 16 cells and compared
    with the pattern; cells of other colours (strokes drawn over it) are ignored. It matches
    when 90% of the known square cells are red and half of the known X cells are white.
    """
    a = np.asarray(image).astype(np.int16)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    red = (r >= 245) & (np.abs(g - b) <= 3) & (g <= 150)
    white = (r >= 235) & (g >= 235) & (b >= 235)
    blobs, _ = ndimage.label(ndimage.binary_closing(red, iterations=2))  # bridge thin strokes
    for box in ndimage.find_objects(blobs):
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        if min(h, w) < 10 or not 0.75 <= h / w <= 1.33:
            continue
        red_cells, white_cells = (
            np.asarray(Image.fromarray(m[box].astype(np.uint8) * 255).resize((_CELLS, _CELLS), Image.Resampling.BOX)) / 255
            for m in (red, white)
        )
        known = red_cells + white_cells
        if known.mean() < 0.6:
            continue
        square_red = red_cells[~PLACEHOLDER_X].sum() / max(known[~PLACEHOLDER_X].sum(), 1e-9)
        x_white = white_cells[PLACEHOLDER_X].sum() / max(known[PLACEHOLDER_X].sum(), 1e-9)
        if square_red >= 0.9 and x_white >= 0.5:
            return True
    return False


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
    ap.add_argument("--max-side", type=int, default=256)
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
        title, desc, raw_tags, author = svg_metadata(svg)
        raw = f"{title} {desc}"
        text = clean_text(f"{title}. {desc}" if desc and desc != title else title)
        tags = clean_tags(raw_tags, author)
        for rx, what in CLEAN_RULES:
            if rx.search(raw):
                cleaned[what] += 1
        for what, hit in (
            ("id tags (hash(0x...), hex, bare numbers)", any(ID_TAG.fullmatch(t.strip()) for t in raw_tags)),
            ("tags naming the author", bool(author) and any(t.strip().lower() == author.lower() for t in raw_tags)),
            ("HTML entities", "&#" in raw or "&amp;" in raw),
        ):
            cleaned[what] += hit
        if not text and not tags:
            no_text += 1
            continue
        picture = on_white(png)
        thumb_digest = hashlib.md5(webp(thumbnail(picture, DEDUP_SIDE), args.quality)).hexdigest()
        if thumb_digest in seen_thumbs:  # different files, same picture (e.g. only metadata differs)
            same_picture += 1
            continue
        seen_thumbs.add(thumb_digest)
        rows.append(
            {
                "thumb": webp(thumbnail(picture, args.max_side), args.quality),
                "placeholder": shows_missing_image_placeholder(thumbnail(picture, PLACEHOLDER_SIDE)),
                "png": png,
                "rel": rel,
                "label": label_of(parts),
                "text": text,
                "tags": ";".join(tags),
            }
        )
    counts = Counter(r["label"] for r in rows)
    dropped = {lab: n for lab, n in counts.items() if n < args.min_class}
    rows = [r for r in rows if r["label"] not in dropped]
    names: set[str] = set()
    for r in rows:
        stem = re.sub(r"[^a-z0-9]+", "-", r["rel"].with_suffix("").as_posix().lower()).strip("-")
        name, n = f"{stem}.webp", 1
        while name in names:  # "a_b.png" and "a-b.png" slug alike
            n += 1
            name = f"{stem}-{n}.webp"
        names.add(name)
        r["image"] = f"images/{name}"
        r["folder"] = r["rel"].parent.as_posix()
    stratified_split(rows)
    placeholders = sorted(r["image"] for r in rows if r["placeholder"])
    rows = [r for r in rows if not r["placeholder"]]

    out_images = args.out / "images"
    out_images.mkdir(parents=True, exist_ok=True)
    for r in rows:
        (args.out / r["image"]).write_bytes(r["thumb"])
    kept = {Path(r["image"]).name for r in rows}
    for stale in sorted({p.name for p in out_images.glob("*.webp")} - kept):  # from an earlier build
        (out_images / stale).unlink()
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
            "split": "stratified 80/20, random.Random(0), drawn before placeholders are dropped",
            "same_picture": f"identical {DEDUP_SIDE}-px WebP thumbnails",
            "missing_image_placeholders": (
                "Inkscape's 'Linked Image Not Found' placeholder (a red square with a white X) found in the "
                f"drawing at {PLACEHOLDER_SIDE} px: the SVG links a raster file the package does not ship"
            ),
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
            "missing_image_placeholders": len(placeholders),
            "dropped_small_labels": dropped,
            "images": len(rows),
            "labels": len(final),
            "train": sum(r["split"] == "train" for r in rows),
            "test": sum(r["split"] == "test" for r in rows),
            "images_bytes": size,
        },
        "placeholders_excluded": placeholders,
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
