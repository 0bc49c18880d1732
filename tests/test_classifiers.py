from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.classifiers import Classifier, ClassifierConfig, stratified_holdout


def _blobs(n=300, d=20, c=4, seed=0):
    r = np.random.default_rng(seed)
    centers = r.normal(size=(c, d)) * 3
    y = r.integers(0, c, n)
    return (centers[y] + r.normal(size=(n, d))).astype(np.float32), y


def test_learns_and_round_trips(tmp_path):
    x, y = _blobs()
    clf = Classifier(4, False, ClassifierConfig(max_epochs=60)).fit(x[:200], y[:200])
    p = clf.predict_proba(x[200:])
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p.argmax(1) == y[200:]).mean() > 0.9
    clf.save(tmp_path, "m")
    again = Classifier.load(tmp_path, "m")
    assert np.allclose(again.predict_proba(x[200:]), p, atol=1e-6)
    assert (tmp_path / "m.safetensors").exists() and (tmp_path / "m.json").exists()


def test_multilabel_sigmoid():
    x, y = _blobs()
    yy = np.eye(4, dtype=np.float32)[y]
    yy[:, 3] = y % 2 == 0
    p = Classifier(4, True, ClassifierConfig(max_epochs=60)).fit(x[:200], yy[:200]).predict_proba(x[200:])
    assert p.shape == (100, 4) and ((p > 0.5) == (yy[200:] > 0.5)).mean() > 0.85


def test_seeded_fits_are_reproducible():
    x, y = _blobs(n=120)
    a = Classifier(4, False, ClassifierConfig(max_epochs=20, seed=1)).fit(x, y).predict_proba(x)
    b = Classifier(4, False, ClassifierConfig(max_epochs=20, seed=1)).fit(x, y).predict_proba(x)
    assert np.array_equal(a, b)


def test_holdout_keeps_small_classes_for_training():
    y = np.array([0] * 20 + [1] * 2)
    m = stratified_holdout(y, 0.15, 0)
    assert m[:20].sum() == 3 and m[20:].sum() == 0


def test_long_epochs_are_checked_every_check_rows():
    x, y = _blobs(n=700)
    cfg = ClassifierConfig(max_epochs=40, patience=5, check_rows=128)
    clf = Classifier(4, False, cfg).fit(x, y)
    # 595 training rows = 10 batches per epoch, a check every 2: the best count is a multiple of 1/5 epoch
    assert abs(clf.best_epochs * 5 - round(clf.best_epochs * 5)) < 1e-9 and clf.best_epochs > 0
    assert (clf.predict_proba(x).argmax(1) == y).mean() > 0.9
    per_epoch = Classifier(4, False, ClassifierConfig(max_epochs=40, patience=5, check_rows=10_000)).fit(x, y)
    assert per_epoch.best_epochs == round(per_epoch.best_epochs)


def test_crossfit_does_not_repeat_flipped_training_labels():
    """A fitted net repeats the wrong labels it trained on; its cross-fitted twins, each trained
    without the row, give most of them back their true label."""
    from core.training import crossfit_folds

    x, y = _blobs(n=300, d=20, c=4, seed=2)
    noisy = y.copy()
    flipped = np.arange(0, 300, 10)
    noisy[flipped] = (y[flipped] + 1) % 4
    cfg = ClassifierConfig(max_epochs=300, patience=300, dropout=0.0, weight_decay=0.0)
    clf = Classifier(4, False, cfg).fit(x, noisy)
    clf.best_epochs = 300  # long enough to memorise every row, the case cross-fitting is for
    clf._refit(x, noisy, None, None)
    in_sample = clf.predict_proba(x)
    crossfit = clf.crossfit(x, noisy, crossfit_folds(noisy, 5, 0, False))
    assert crossfit.shape == in_sample.shape and np.allclose(crossfit.sum(1), 1, atol=1e-5)
    assert (in_sample[flipped].argmax(1) == noisy[flipped]).mean() > 0.8  # memorised
    assert (crossfit[flipped].argmax(1) == y[flipped]).mean() > 0.8  # the true labels come back
    assert (crossfit.argmax(1) == noisy).mean() < (in_sample.argmax(1) == noisy).mean()


def test_crossfit_folds_are_stratified_and_seeded():
    from core.training import crossfit_folds

    y = np.repeat(np.arange(3), 10)
    fold = crossfit_folds(y, 5, 0, False)
    assert np.array_equal(fold, crossfit_folds(y, 5, 0, False))
    for c in range(3):
        assert sorted(np.bincount(fold[y == c], minlength=5)) == [2, 2, 2, 2, 2]
    soft = np.eye(3, dtype=np.float32)[y] * 0.8 + 0.2 / 3  # soft targets: by their top label
    assert np.array_equal(crossfit_folds(soft, 5, 0, False), fold)


def test_warm_start_fine_tunes_the_twin():
    """A model of the same input on other targets starts from its twin's weights and standardisation."""
    x, y = _blobs(n=300)
    val = stratified_holdout(y, 0.15, 0)
    cfg = ClassifierConfig(max_epochs=40)
    twin = Classifier(4, False, cfg).fit(x, y, val_mask=val)
    y2 = np.where(y == 3, 2, y)  # other targets: two labels merged, as caption labels relabel rows
    # no learning rate: the fine-tuned model is its twin, weights and standardisation
    still = Classifier(4, False, replace(cfg, lr=0.0)).fit_from(twin, x, y2, val)
    np.testing.assert_array_equal(still.predict_proba(x), twin.predict_proba(x))
    fresh = Classifier(4, False, replace(cfg, lr=0.0)).fit(x, y2, val_mask=val)  # from scratch: a random net
    assert not np.allclose(fresh.predict_proba(x), twin.predict_proba(x), atol=1e-3)
    tuned = Classifier(4, False, cfg).fit_from(twin, x, y2, val)
    assert tuned.mean is twin.mean and tuned.std is twin.std
    assert 0 < tuned.best_epochs <= cfg.warm_max_epochs and 0.9 < tuned.val_score <= 1
    right = lambda c: (c.predict_proba(x).argmax(1) == y2).mean()  # noqa: E731
    assert right(twin) < 0.85 < 0.95 < right(tuned)  # it learnt the new targets
    with pytest.raises(RuntimeError, match="not fitted"):
        Classifier(4, False, cfg).fit_from(Classifier(4, False, cfg), x, y2, val)


def test_fused_optimiser_trains_the_same_model_up_to_rounding():
    """``fused`` (the caption models' optimiser) takes the same steps as ``foreach``, in fewer kernels."""
    x, y = _blobs(n=200)
    cfg = ClassifierConfig(max_epochs=30)
    foreach = Classifier(4, False, cfg).fit(x, y)
    fused = Classifier(4, False, replace(cfg, fused=True)).fit(x, y)
    assert fused.best_epochs == foreach.best_epochs
    np.testing.assert_allclose(fused.predict_proba(x), foreach.predict_proba(x), atol=1e-3)
    caption = cfg.for_captions()
    assert caption.fused and caption.patience == cfg.caption_patience and not cfg.fused
