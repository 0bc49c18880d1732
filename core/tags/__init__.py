"""Tag-neighbourhood annotation (Johnson et al., ICCV 2015; Tesan, Coscia & Ballan).

* :mod:`core.tags.neighbours` -- tag vocabularies, embedded tags, nearest images by tags.
* :mod:`core.tags.models` -- visual-only, LTN and LTwin (max or LSTM pooling).
* :mod:`core.tags.annotate` -- fit, evaluate and reopen them on a workspace.
"""
