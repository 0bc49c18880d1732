"""Labeling: the correction store, review queues, export and retraining.

* :mod:`core.labels.store` -- append-only label history in SQLite (WAL) or PostgreSQL.
* :mod:`core.labels.queue` -- review strategies (disagreement, margin, likely label errors, ...).
* :mod:`core.labels.session` -- a workspace's store and its corrected labels.
* :mod:`core.labels.export` -- the corrected manifest and the correction log.
* :mod:`core.labels.retrain` -- refit the classifiers on corrected labels, embeddings reused.
"""
