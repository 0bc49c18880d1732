"""Zero-shot co-embedding baseline (paper §4.3).

A label (a name plus optional synonyms) is placed in the phrase generator's co-embedding
space term by term: a term that is a vocabulary phrase with a prototype uses that prototype;
any other term goes through a learned linear map from its text embedding to the co-embedding
(ridge regression fitted on the vocabulary's (text embedding, prototype) pairs, or on a seeded
uniform sample of them past a size: :func:`fit_mapper`). An image's
score for a label is the best cosine over the label's terms; the nearest label wins. Works for
any label set a user types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load_file, save_file

from core.phrases.vocab import normalize
from core.vectors import l2n, sample_rows


class TextToCoEmbedding:
    """Ridge regression ``text embedding -> co-embedding`` (outputs L2-normalised)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight.astype(np.float32)
        self.bias = bias.astype(np.float32)

    @classmethod
    def fit(cls, text_emb: np.ndarray, targets: np.ndarray, *, alpha: float = 1.0) -> TextToCoEmbedding:
        x_mean, y_mean = text_emb.mean(0), targets.mean(0)
        x, y = text_emb - x_mean, targets - y_mean
        w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)
        return cls(w, y_mean - x_mean @ w)

    def __call__(self, text_emb: np.ndarray) -> np.ndarray:
        return l2n(text_emb @ self.weight + self.bias)

    def save(self, path: str) -> None:
        save_file({"weight": self.weight, "bias": self.bias}, path)

    @classmethod
    def load(cls, path: str) -> TextToCoEmbedding:
        t = load_file(path)
        return cls(t["weight"], t["bias"])


def fit_mapper(
    text_emb: np.ndarray, prototypes: np.ndarray, *, sample_above: int | None = None, seed: int = 0
) -> TextToCoEmbedding:
    """The text -> co-embedding map fitted on the (text embedding, prototype) pairs of the phrases
    that have a prototype (a non-zero row).

    Args:
        text_emb: (V, T) text embedding of every phrase (row ``j``: phrase ``j``).
        prototypes: (V, d) prototype of every phrase, zero for phrases without images (may be
            memory-mapped).
        sample_above: up to this many phrases (or with ``None``) every pair is used, as it always
            was; above, only the pairs of a seeded uniform sample of ``sample_above`` phrases
            (:func:`core.vectors.sample_rows`): both arrays are read at those rows only, never
            copied whole.
        seed: the sample's seed.
    """
    if sample_above is None or len(prototypes) <= sample_above:
        has_proto = np.abs(prototypes).sum(1) > 0
        return TextToCoEmbedding.fit(text_emb[has_proto], prototypes[has_proto])
    rows = sample_rows(len(prototypes), sample_above, seed)
    protos = np.asarray(prototypes[rows])
    keep = np.abs(protos).sum(1) > 0
    return TextToCoEmbedding.fit(np.asarray(text_emb[rows[keep]]), protos[keep])


def label_terms(label: str, synonyms: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Normalised terms of a label: the name, its last path segment ("animals/mammals" ->
    "mammals"), and the synonyms."""
    terms: dict[str, None] = {}
    for t in (label, label.replace("/", " ").replace("_", " ").replace("-", " "), label.split("/")[-1], *synonyms):
        n = normalize(t.replace("_", " "))
        if n:
            terms.setdefault(n, None)
    return list(terms)


def parse_label_spec(spec: str) -> list[tuple[str, list[str]]]:
    """Parse ``"cat|kitty, dog|puppy, car"`` into ``[(name, synonyms), ...]`` (also ``;``/newlines)."""
    out = []
    for chunk in spec.replace("\n", ",").replace(";", ",").split(","):
        parts = [p.strip() for p in chunk.split("|") if p.strip()]
        if parts:
            out.append((parts[0], parts[1:]))
    return out


@dataclass
class LabelMatch:
    """Which dataset labels typed label names name (:func:`match_labels`).

    Attributes:
        matched: dataset label -> index of the typed name naming it.
        ambiguous: typed name -> the dataset labels it names equally well (it is matched to none).
    """

    matched: dict[str, int]
    ambiguous: dict[str, list[str]]


def _singular_forms(word: str) -> set[str]:
    """``word`` and what it is the simple English plural of ("berries" -> "berry", "boxes" -> "box")."""
    forms = {word}
    if len(word) > 3 and word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if len(word) > 2 and word.endswith("es"):
        forms.add(word[:-2])
    if len(word) > 1 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    return forms


def _same_but_plural(a: str, b: str) -> bool:
    """Whether two normalised names are the same words, each perhaps a simple plural of the other's."""
    wa, wb = a.split(), b.split()
    return len(wa) == len(wb) and all(_singular_forms(x) & _singular_forms(y) for x, y in zip(wa, wb, strict=True))


def match_labels(typed: list[str], dataset_labels: list[str]) -> LabelMatch:
    """The dataset labels the typed names name. A typed name names a dataset label when it is,
    case and punctuation aside (:func:`core.phrases.vocab.normalize`), the label ("animals/birds")
    or else its last path segment ("birds"), or failing both for every label, either of them up to
    a simple English plural ("bird" for "animals/birds", "berries" for "berry"). A typed name that
    names two dataset labels at the same step ("bird" with "animals/birds" and "toys/birds") names
    neither: it is :attr:`LabelMatch.ambiguous`. A dataset label two typed names name goes to the first."""
    full = {lab: normalize(lab) for lab in dataset_labels}
    forms = {lab: {full[lab], normalize(lab.split("/")[-1])} for lab in dataset_labels}
    tests = (
        lambda n, lab: n == full[lab],
        lambda n, lab: n in forms[lab],
        lambda n, lab: any(_same_but_plural(n, f) for f in forms[lab]),
    )
    matched: dict[str, int] = {}
    ambiguous: dict[str, list[str]] = {}
    for j, name in enumerate(typed):
        n = normalize(name)
        if not n:
            continue
        found = next((hit for test in tests if (hit := [lab for lab in dataset_labels if test(n, lab)])), [])
        if len(found) > 1:
            ambiguous[name] = found
        elif found:
            matched.setdefault(found[0], j)
    return LabelMatch(matched, ambiguous)


def label_embeddings(
    labels: list[tuple[str, list[str]]],
    *,
    vocab_index: dict[str, int],
    prototypes: np.ndarray,
    embed_text: object,
    mapper: TextToCoEmbedding,
) -> list[np.ndarray]:
    """Co-embeddings of every label's terms: a list of (n_terms, d) arrays."""
    out = []
    for name, syns in labels:
        vecs = []
        missing = []
        for term in label_terms(name, syns):
            j = vocab_index.get(term)
            if j is not None and np.abs(prototypes[j]).sum() > 0:
                vecs.append(prototypes[j])
            else:
                missing.append(term)
        if missing:
            vecs.extend(mapper(embed_text(missing)))  # type: ignore[operator]
        out.append(np.stack(vecs).astype(np.float32))
    return out


def text_label_embeddings(labels: list[tuple[str, list[str]]], embed_text: object) -> list[np.ndarray]:
    """Text embeddings of every label's terms, for workspaces without a co-embedding (ImageNet
    phrase source): images are then compared through their phrase text vectors."""
    return [embed_text(label_terms(name, syns)) for name, syns in labels]  # type: ignore[operator]


def zero_shot_scores(embeddings: np.ndarray, term_embeddings: list[np.ndarray]) -> np.ndarray:
    """(N, L) cosine of each image to its closest term of each label."""
    return np.stack([(embeddings @ t.T).max(1) for t in term_embeddings], axis=1)


def scores_to_proba(scores: np.ndarray, scale: float = 16.0) -> np.ndarray:
    """Softmax of scaled cosine scores (for ranking metrics and display)."""
    z = scale * (scores - scores.max(1, keepdims=True))
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)
