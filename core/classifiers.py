"""The classifiers of paper §3.5 / §4.2: one architecture, three inputs.

* ``baseline``: the visual vector alone;
* ``multimodal``: [visual ; text vector of the generated phrases];
* ``text_only``: the text vector alone.

Each is a two-layer fully connected net (softmax for single-label, sigmoid for multi-label),
trained with early stopping on a validation part of the labelled rows (checked every epoch, or
every ``check_rows`` training rows on large inputs, so that patience does not cost whole passes
over thousands of caption-labelled rows); the best (possibly fractional) epoch count is then
used to refit on all labelled rows, so scarce labels are not wasted on validation.
A model trained on other targets of the same input (the caption models: human + caption labels)
can instead start from its twin's trained weights and fine-tune briefly (:meth:`Classifier.fit_from`,
``warm_start``, off by default): the twin has already learnt the input.
Weights are saved as safetensors + JSON.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, load_module_tensors, module_tensors, save_checkpoint
from core.config import ClassifierConfig  # defined there: reading a fit's config imports no torch


def _net(in_dim: int, n_out: int, cfg: ClassifierConfig) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(in_dim, cfg.hidden_dim),
        torch.nn.ReLU(),
        torch.nn.Dropout(cfg.dropout),
        torch.nn.Linear(cfg.hidden_dim, n_out),
    )


def _non_visual_columns(width: int, blocks: tuple[int, ...] | None) -> np.ndarray | None:
    """Mask of the columns after the first (visual) block: what modality dropout hides."""
    return np.arange(width) >= blocks[0] if blocks is not None and len(blocks) > 1 else None


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a validation part: ``fraction`` of every class with 3+ rows (single-label),
    or of all rows (multi-label)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    if y.ndim == 2:
        n_val = round(fraction * len(y))
        mask[rng.permutation(len(y))[:n_val]] = True
        return mask
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 3:
            n_val = max(1, round(fraction * len(idx)))
            mask[rng.permutation(idx)[:n_val]] = True
    return mask


class Classifier:
    """A standardising two-layer MLP classifier."""

    def __init__(self, n_classes: int, multilabel: bool, config: ClassifierConfig | None = None) -> None:
        self.n_classes = n_classes
        self.multilabel = multilabel
        self.config = config or ClassifierConfig()
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.net: torch.nn.Module | None = None
        self.best_epochs = 0
        self.visual_share: float | None = None
        self.val_score = float("nan")
        self.holdout_net: torch.nn.Module | None = None  # trained without the validation rows (not saved)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        return torch.nn.functional.cross_entropy(logits, y)

    def _train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: float,
        val: tuple[np.ndarray, np.ndarray] | None,
        drop_cols: np.ndarray | None = None,
        init: torch.nn.Module | None = None,
        patience: int | None = None,
    ) -> tuple[torch.nn.Module, float, float]:
        """Train a net for ``epochs`` passes over ``x`` (fractional: a part of the last one).

        With ``val``, the validation loss is checked every epoch or every ``check_rows`` rows,
        whichever comes first; training stops after ``patience`` (default ``config.patience``)
        checks without improvement (``epochs`` then caps the number of checks) and the best
        check's net, its epoch count (fractional) and its validation loss are returned.
        ``init``: a trained net to start from (a copy is trained) instead of a new one.
        """
        cfg = self.config
        patience = cfg.patience if patience is None else patience
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        net = _net(x.shape[1], self.n_classes, cfg) if init is None else copy.deepcopy(init)
        kind = {"fused": True} if cfg.fused else {"foreach": True}
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **kind)
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y.astype(np.float32) if self.multilabel or y.ndim == 2 else y.astype(np.int64))
        per_epoch, check = self._batches(len(x))
        n_steps = round(epochs * check) if val is not None else max(1, round(epochs * per_epoch))
        if val is not None:
            xv = torch.from_numpy(val[0])
            yv = torch.from_numpy(val[1].astype(np.float32) if self.multilabel or y.ndim == 2 else val[1].astype(np.int64))
        drop = torch.from_numpy(drop_cols) if drop_cols is not None and cfg.modality_dropout > 0 else None
        best, best_step, best_state = float("inf"), 0, None
        step = 0
        while step < n_steps:
            order = rng.permutation(len(x))
            for b in range(0, len(x), cfg.batch_size):
                net.train()
                idx = torch.from_numpy(order[b : b + cfg.batch_size])
                xb = xt[idx]
                if drop is not None:  # modality dropout: hide the non-visual blocks of some rows
                    hide = torch.rand(len(idx), 1) < cfg.modality_dropout
                    xb = torch.where(hide & drop, torch.zeros_like(xb), xb)
                loss = self._loss(net(xb), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if val is not None and step % check == 0:
                    net.eval()
                    with torch.inference_mode():
                        vloss = float(self._loss(net(xv), yv))
                    if vloss < best - 1e-4:
                        best, best_step = vloss, step
                        best_state = {k: v.clone() for k, v in net.state_dict().items()}
                    elif step - best_step >= patience * check:
                        n_steps = step
                if step >= n_steps:
                    break
        if val is not None and best_state is not None:
            net.load_state_dict(best_state)
            return net, best_step / per_epoch, best
        return net, epochs, best

    def _batches(self, n_rows: int) -> tuple[int, int]:
        """Batches per epoch over ``n_rows`` rows, and batches between two validation checks."""
        per_epoch = -(-n_rows // self.config.batch_size)
        return per_epoch, max(1, min(per_epoch, self.config.check_rows // self.config.batch_size))

    def _block_scale(self, blocks: tuple[int, ...], visual_share: float) -> np.ndarray:
        """Per-column factors giving the first (visual) block ``visual_share`` of the total
        variance and the other blocks equal parts of the rest."""
        d = sum(blocks)
        rest = (1 - visual_share) / max(1, len(blocks) - 1)
        shares = [visual_share] + [rest] * (len(blocks) - 1)
        return np.concatenate([np.full(n, np.sqrt(sh * d / n)) for n, sh in zip(blocks, shares)]).astype(np.float32)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        blocks: tuple[int, ...] | None = None,
        val_mask: np.ndarray | None = None,
        visual_share: float | None = None,
    ) -> Classifier:
        """Train on features ``x`` (N, D) and labels ``y``.

        Args:
            x: features; for a multi-modal input, the modalities side by side, visual first.
            y: (N,) class indices, (N, C) 0/1 (multi-label) or (N, C) class probabilities
                (single-label soft targets).
            blocks: widths of the modalities in ``x`` (e.g. ``(1280, 384)``). With two or more,
                each block is balanced (``fusion``): ``balanced`` gives every block an equal
                share of the input variance, ``cv`` picks the visual share among
                ``visual_shares`` by the validation loss of the labelled rows' holdout,
                ``concat`` leaves the plain concatenation.
            val_mask: the rows held out for early stopping (and the fusion choice); default a
                stratified ``val_fraction`` of ``x``. After the choice, every row is trained on.
                ``val_score`` keeps the held-out model's score on them (top-1, or mAP).
            visual_share: a visual share chosen before (by the same architecture on other
                targets: the caption models reuse their paper twin's), tried alone instead of
                the ``cv`` search (with ``cv`` fusion only).
        """
        x = np.asarray(x, dtype=np.float32)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mean) / self.std
        cfg = self.config
        multi = blocks is not None and len(blocks) > 1 and cfg.fusion != "concat"
        drop_cols = _non_visual_columns(x.shape[1], blocks)
        if val_mask is None:
            val_mask = stratified_holdout(y.argmax(1) if y.ndim == 2 and not self.multilabel else y, cfg.val_fraction, cfg.seed)
        has_val = val_mask.sum() >= 2 and (~val_mask).sum() >= 2
        shares = [1.0 / len(blocks)] if multi and cfg.fusion == "balanced" else list(cfg.visual_shares) if multi else [None]
        if multi and cfg.fusion == "cv" and visual_share is not None:
            shares = [visual_share]
        if multi and not has_val:
            shares = [shares[len(shares) // 2]]
        tried = []  # (validation loss, best epoch count, visual share, validation score, net) per candidate
        for share in shares:
            if not has_val:
                tried.append((0.0, min(cfg.max_epochs, 100), share, float("nan"), None))
                continue
            scale = self._block_scale(blocks, share) if share is not None else np.float32(1.0)
            val = (xs[val_mask] * scale, y[val_mask])
            net, epochs, loss = self._train(xs[~val_mask] * scale, y[~val_mask], cfg.max_epochs, val, drop_cols)
            tried.append((loss, max(epochs, 5), share, self._score(net, *val), net))
        _, self.best_epochs, self.visual_share, self.val_score, self.holdout_net = min(tried, key=lambda t: t[0])
        self._refit(x, y, blocks, drop_cols)
        return self

    def _refit(self, x: np.ndarray, y: np.ndarray, blocks: tuple[int, ...] | None, drop_cols: np.ndarray | None) -> None:
        """Train the final net on every row of ``x`` with the chosen visual share and epoch count."""
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        if self.visual_share is not None:
            self.std = self.std / self._block_scale(blocks, self.visual_share)
        self.net, _, _ = self._train((x - self.mean) / self.std, y, self.best_epochs, None, drop_cols)
        self.net.eval()

    def fit_from(
        self, twin: Classifier, x: np.ndarray, y: np.ndarray, val_mask: np.ndarray, blocks: tuple[int, ...] | None = None
    ) -> Classifier:
        """Train on ``x``, ``y`` by fine-tuning ``twin``, a fitted classifier of the same input.

        The twin's standardisation and fusion weight are kept. Its held-out net (trained without
        the ``val_mask`` rows, which must be the rows the twin held out) is fine-tuned on the
        other rows with early stopping on the ``val_mask`` rows (``warm_patience``,
        ``warm_max_epochs``); that gives the epoch count (at least 5, as :meth:`fit`) and
        ``val_score``. Then the twin's final net is fine-tuned on every row for that many epochs.
        Without validation rows (or a held-out net), 5 epochs.

        Args:
            twin: the fitted classifier to start from (e.g. ``baseline`` for ``baseline_captions``).
            x: features of the rows to train on (same columns as the twin's).
            y: their targets.
            val_mask: the rows held out for early stopping.
            blocks: the modalities' widths (as given to the twin's :meth:`fit`).
        """
        if twin.net is None or twin.mean is None or twin.std is None:
            raise RuntimeError("the twin classifier is not fitted")
        cfg = self.config
        self.mean, self.std, self.visual_share = twin.mean, twin.std, twin.visual_share
        xs = ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)
        drop_cols = _non_visual_columns(x.shape[1], blocks)
        self.best_epochs, self.val_score = 5.0, float("nan")
        if twin.holdout_net is not None and val_mask.sum() >= 2 and (~val_mask).sum() >= 2:
            val = (xs[val_mask], y[val_mask])
            net, epochs, _ = self._train(
                xs[~val_mask],
                y[~val_mask],
                cfg.warm_max_epochs,
                val,
                drop_cols,
                init=twin.holdout_net,
                patience=cfg.warm_patience,
            )
            self.best_epochs, self.val_score = max(epochs, 5), self._score(net, *val)
        self.net, _, _ = self._train(xs, y, self.best_epochs, None, drop_cols, init=twin.net)
        self.net.eval()
        return self

    def crossfit(self, x: np.ndarray, y: np.ndarray, fold: np.ndarray, blocks: tuple[int, ...] | None = None) -> np.ndarray:
        """Cross-fitted probabilities of the rows this classifier was trained on.

        Each fold's rows are predicted by a twin trained on the other folds with this
        classifier's fusion choice and epoch count (no new search, so K folds cost about K
        refits). A model's probabilities on its own training rows say little: it has fitted
        them, wrong labels included. These are what a model that never saw the row says.

        Args:
            x: the training rows' features (as given to :meth:`fit`).
            y: their targets.
            fold: (N,) fold of each row (:func:`core.training.crossfit_folds`).
            blocks: the modalities' widths (as given to :meth:`fit`).
        """
        x = np.asarray(x, dtype=np.float32)
        drop_cols = _non_visual_columns(x.shape[1], blocks)
        out = self.predict_proba(x)  # a row alone in its fold has no other rows to learn from
        for f in np.unique(fold):
            held = fold == f
            if held.all():
                continue
            twin = Classifier(self.n_classes, self.multilabel, self.config)
            twin.best_epochs, twin.visual_share = self.best_epochs, self.visual_share
            twin._refit(x[~held], y[~held], blocks, drop_cols)
            out[held] = twin.predict_proba(x[held])
        return out

    @torch.inference_mode()
    def _score(self, net: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
        """Top-1 accuracy (single-label) or mAP (multi-label) of ``net`` on standardised ``x``."""
        from core.metrics import evaluate

        net.eval()
        logits = net(torch.from_numpy(x))
        if self.multilabel:
            return evaluate(y, torch.sigmoid(logits).numpy(), multilabel=True)["mAP"]
        truth = y.argmax(1) if y.ndim == 2 else y
        return float((logits.argmax(1).numpy() == truth).mean())

    @torch.inference_mode()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, C) probabilities: softmax (single-label) or sigmoid (multi-label)."""
        if self.net is None or self.mean is None or self.std is None:
            raise RuntimeError("classifier is not fitted")
        xs = torch.from_numpy(((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32))
        logits = self.net(xs)
        p = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)
        return p.numpy()

    def save(self, folder: str | Path, name: str) -> None:
        assert self.net is not None and self.mean is not None and self.std is not None
        meta = {
            "n_classes": self.n_classes,
            "multilabel": self.multilabel,
            "in_dim": int(self.mean.shape[0]),
            "best_epochs": self.best_epochs,
            "visual_share": self.visual_share,
            "config": asdict(self.config),
        }
        save_checkpoint(folder, name, {**module_tensors(self.net, "net."), "mean": self.mean, "std": self.std}, meta)

    @classmethod
    def load(cls, folder: str | Path, name: str) -> Classifier:
        t, meta = load_checkpoint(folder, name)
        clf = cls(meta["n_classes"], meta["multilabel"], ClassifierConfig(**meta["config"]))
        clf.mean, clf.std, clf.best_epochs = t["mean"], t["std"], meta["best_epochs"]
        clf.visual_share = meta.get("visual_share")
        net = _net(meta["in_dim"], meta["n_classes"], clf.config)
        load_module_tensors(net, t, "net.")
        clf.net = net.eval()
        return clf
