"""Semantic retrieval (Gordo & Larlus, CVPR 2017) on a workspace's visual features.

* :mod:`core.retrieval.tfidf` -- stemmed tf-idf: the ground-truth semantic similarity.
* :mod:`core.retrieval.model` -- the (V) and (V+T) embeddings and their triplet losses.
* :mod:`core.retrieval.evaluate` -- NDCG@R and PCC@R curves and their AUCs.
* :mod:`core.retrieval.semantic` -- fit, search (image, text, image + text), evaluate, store.
"""
