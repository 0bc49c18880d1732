"""Escape user data (labels, captions, phrases, paths, URL parameters) before Streamlit renders it.

Streamlit renders markdown in ``st.markdown``, ``st.caption``, alerts, widget labels, button
labels and tooltips: a label such as ``![x](http://attacker/pixel.png)`` would make every browser
that shows it fetch the attacker's URL, and ``[log in](https://evil.example)`` would be a real
link. :func:`md` backslash-escapes every ASCII punctuation character (CommonMark lets any of them
be escaped, and Streamlit's own ``:color[...]``, ``:material/...:`` and ``$...$`` extensions start
with one), and folds line breaks, so the value renders as the literal text it is. GitHub-style
autolinks (``https://…``, ``www.…``, ``a@b.c``) are found in the text *after* escapes apply, so a
zero-width space is put after their scheme, ``www`` or ``@``: the text reads the same and is no
link. Never put an escaped value inside backticks (escapes do not apply in code spans).

Plotly renders a subset of HTML in the SVG text of a chart (axis ticks, hover labels, legend
entries, titles, annotations): ``<a href>`` becomes a real link, ``<b>``, ``<br>``, ``<span style>``
restyle, and unknown tags vanish. :func:`plotly_text` escapes ``&``, ``<`` and ``>`` as entities, which
Plotly decodes back to the literal characters (checked in headless Chromium:
``tests/test_browser.py``). Text a WebGL trace draws itself (``Scattergl``'s ``text``) reads no HTML
and takes the raw value; its hover text goes through SVG and is escaped.

This module imports neither ``core`` nor Streamlit, so it can move with the UI helpers.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable

_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")
_BREAKS = re.compile(r"\s*[\r\n\u2028\u2029]+\s*")
_AUTOLINK = re.compile(r"(?i)(\b(?:https?|ftp|mailto)\\:|\bwww(?=\\\.)|\\@)")


def md(value: object) -> str:
    """``value`` as text that Streamlit markdown shows literally (no link, image, emphasis, HTML).

    Args:
        value: anything; it is converted with ``str``.

    Returns:
        The text with every ASCII punctuation character backslash-escaped and line breaks
        folded to single spaces.
    """
    text = _BREAKS.sub(" ", str(value))
    return _AUTOLINK.sub("\\1\u200b", _SPECIAL.sub(r"\\\1", text))


def md_join(values: Iterable[object], sep: str = ", ", empty: str = "—") -> str:
    """Escaped values joined by ``sep`` (itself shown as is), or ``empty`` when there are none."""
    parts = [md(v) for v in values]
    return sep.join(parts) if parts else empty


def plotly_text(value: object) -> str:
    """``value`` as text that a Plotly chart's SVG shows literally (no link, markup or line break).

    Args:
        value: anything; it is converted with ``str``.

    Returns:
        The text with ``&``, ``<`` and ``>`` as HTML entities and line breaks folded to single spaces.
    """
    return html.escape(_BREAKS.sub(" ", str(value)), quote=False)
