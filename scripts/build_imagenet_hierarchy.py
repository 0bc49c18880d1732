"""Write ``core/resources/imagenet_hypernyms.json``: WordNet hypernyms of the ImageNet-1k classes.

The ImageNet head phrase source widens its output space with the WordNet hypernyms of its
classes (prototype = mean of the children). The hierarchy comes from Debian's ``wordnet-base``
(WordNet 3.0, WordNet licence: free to use and redistribute with its notice)::

    apt-get download wordnet-base && dpkg -x wordnet-base_*.deb wn
    python scripts/build_imagenet_hierarchy.py wn/usr/share/wordnet/data.noun

Only hypernyms covering 2 to ``--max-children`` classes are kept: broader ones ("entity",
"object", "organism") describe nothing in particular.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "core" / "resources"


def parse_data_noun(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(offset -> lemmas, offset -> hypernym offsets) of WordNet's noun database."""
    lemmas, parents = {}, {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # licence header
        fields = line.split(" | ")[0].split()
        offset, n_words = fields[0], int(fields[3], 16)
        words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        rest = fields[4 + 2 * n_words :]
        n_ptr = int(rest[0])
        ptrs = [rest[1 + 4 * i : 5 + 4 * i] for i in range(n_ptr)]
        lemmas[offset] = words
        parents[offset] = [p[1] for p in ptrs if p[0] in ("@", "@i") and p[2] == "n"]
    return lemmas, parents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_noun", type=Path)
    ap.add_argument("--max-children", type=int, default=150)
    args = ap.parse_args()
    classes = json.loads((RESOURCES / "imagenet1k.json").read_text())["classes"]
    lemmas, parents = parse_data_noun(args.data_noun)
    children: dict[str, set[int]] = defaultdict(set)
    for idx, c in enumerate(classes):
        stack, seen = list(parents[c["synset"][1:]]), set()
        while stack:
            off = stack.pop()
            if off in seen:
                continue
            seen.add(off)
            children[off].add(idx)
            stack.extend(parents.get(off, []))
    kept = sorted(
        (off for off, ch in children.items() if 2 <= len(ch) <= args.max_children), key=lambda o: (-len(children[o]), o)
    )
    out = {
        "source": "WordNet 3.0 data.noun from Debian wordnet-base 1:3.0-37 (WordNet licence); "
        f"hypernyms of the ImageNet-1k classes covering 2-{args.max_children} classes",
        "hypernyms": [{"synset": f"n{off}", "lemmas": lemmas[off][:3], "children": sorted(children[off])} for off in kept],
    }
    (RESOURCES / "imagenet_hypernyms.json").write_text(json.dumps(out, separators=(",", ":")))
    print(f"{len(kept)} hypernyms, e.g. " + "; ".join(f"{h['lemmas'][0]} ({len(h['children'])})" for h in out["hypernyms"][:8]))


if __name__ == "__main__":
    main()
