"""The classifiers of paper §3.5 / §4.2: one architecture, three inputs.

* ``baseline``: the visual vector alone;
* ``multimodal``: [visual ; text vector of the generated phrases];
* ``text_only``: the text vector alone.

Each is a two-layer fully connected net (softmax for single-label, sigmoid for multi-label),
trained with early stopping on a validation part of the labelled rows; the best epoch count
is then used to refit on all labelled rows, so scarce labels are not wasted on validation.
Weights are saved as safetensors + JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, load_module_tensors, module_tensors, save_checkpoint


@dataclass
class ClassifierConfig:
    """Hyper-parameters of the two-layer classifier."""

    hidden_dim: int = 512
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 300
    patience: int = 25
    val_fraction: float = 0.15
    seed: int = 0


def _net(in_dim: int, n_out: int, cfg: ClassifierConfig) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(in_dim, cfg.hidden_dim),
        torch.nn.ReLU(),
        torch.nn.Dropout(cfg.dropout),
        torch.nn.Linear(cfg.hidden_dim, n_out),
    )


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

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        return torch.nn.functional.cross_entropy(logits, y)

    def _train(
        self, x: np.ndarray, y: np.ndarray, epochs: int, val: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[torch.nn.Module, int]:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        net = _net(x.shape[1], self.n_classes, cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        xt = torch.from_numpy(x)
        yt = torch.from_numpy(y.astype(np.float32) if self.multilabel else y.astype(np.int64))
        if val is not None:
            xv = torch.from_numpy(val[0])
            yv = torch.from_numpy(val[1].astype(np.float32) if self.multilabel else val[1].astype(np.int64))
        best, best_epoch, best_state = float("inf"), 0, None
        for epoch in range(1, epochs + 1):
            net.train()
            order = rng.permutation(len(x))
            for b in range(0, len(x), cfg.batch_size):
                idx = torch.from_numpy(order[b : b + cfg.batch_size])
                loss = self._loss(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if val is not None:
                net.eval()
                with torch.inference_mode():
                    vloss = float(self._loss(net(xv), yv))
                if vloss < best - 1e-4:
                    best, best_epoch = vloss, epoch
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                elif epoch - best_epoch >= cfg.patience:
                    break
        if val is not None and best_state is not None:
            net.load_state_dict(best_state)
            return net, best_epoch
        return net, epochs

    def fit(self, x: np.ndarray, y: np.ndarray) -> Classifier:
        """Train on features ``x`` (N, D) and labels ``y`` ((N,) ints or (N, C) 0/1)."""
        x = np.asarray(x, dtype=np.float32)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mean) / self.std
        cfg = self.config
        val_mask = stratified_holdout(y, cfg.val_fraction, cfg.seed)
        if val_mask.sum() >= 2 and (~val_mask).sum() >= 2:
            _, self.best_epochs = self._train(xs[~val_mask], y[~val_mask], cfg.max_epochs, (xs[val_mask], y[val_mask]))
            self.best_epochs = max(self.best_epochs, 5)
        else:
            self.best_epochs = min(cfg.max_epochs, 100)
        self.net, _ = self._train(xs, y, self.best_epochs, None)
        self.net.eval()
        return self

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
            "config": asdict(self.config),
        }
        save_checkpoint(folder, name, {**module_tensors(self.net, "net."), "mean": self.mean, "std": self.std}, meta)

    @classmethod
    def load(cls, folder: str | Path, name: str) -> Classifier:
        t, meta = load_checkpoint(folder, name)
        clf = cls(meta["n_classes"], meta["multilabel"], ClassifierConfig(**meta["config"]))
        clf.mean, clf.std, clf.best_epochs = t["mean"], t["std"], meta["best_epochs"]
        net = _net(meta["in_dim"], meta["n_classes"], clf.config)
        load_module_tensors(net, t, "net.")
        clf.net = net.eval()
        return clf
