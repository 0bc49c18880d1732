"""Page state in the URL: a page's filters and selections live in its query parameters, so they
survive navigation (a per-session copy restores them when the user comes back through the menu),
a reload, and a shared link; parameters of one page never leak into another's URL.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

# Query parameters each page owns (url_path -> names); the frame drops every other one.
PAGE_PARAMS: dict[str, set[str]] = {
    "explore": {"item", "true", "split", "model", "pred", "correct", "change", "conf", "phrase", "page"},
    "compare": {"which", "label"},
    "annotate": {"labeler", "queue"},
}


def clean_url(url_path: str) -> None:
    """Drop the query parameters the current page does not own (e.g. Explore's ``item`` on Compare)."""
    owned = PAGE_PARAMS.get(url_path, set())
    for name in [k for k in st.query_params if k not in owned]:
        del st.query_params[name]


def _decode(raw: list[str], default: Any) -> Any:
    if isinstance(default, list):
        return list(raw)
    if isinstance(default, tuple):
        return tuple(type(d)(r) for d, r in zip(default, raw, strict=True))
    value = raw[0]
    if isinstance(default, bool):
        return value == "1"
    return type(default)(value) if default is not None else value


def _encode(value: Any) -> str | list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _allowed(value: Any, allowed: Any) -> bool:
    return allowed is None or (all(v in allowed for v in value) if isinstance(value, list) else value in allowed)


def restore(page: str, fields: dict[str, tuple[str, Any]], valid: dict[str, Any] | None = None, scope: str | None = None) -> None:
    """Before a page's widgets: fill their state from the URL, else from this session's last visit,
    else the default (the widgets themselves then take no default value).

    Args:
        page: the page's name (its saved copy in the session).
        fields: widget key -> (query parameter, default value).
        valid: widget key -> the allowed values (options of a select box); values outside are dropped,
            the widget's current one included (then filled again as above).
        scope: what the defaults depend on (the workspace): when it changes, a field left at the old
            default takes the new one (Explore's model follows the workspace's best model).
    """
    saved = st.session_state.get(f"_saved_{page}", {})
    if scope is not None:
        seen = st.session_state.setdefault(f"_scope_{page}", {})
        if seen.get("scope") != scope:
            old = seen.get("defaults", {})
            for values in (st.session_state, saved):
                for key, (_, default) in fields.items():
                    if key in values and key in old and values[key] == old[key]:
                        values[key] = default
            seen.update(scope=scope, defaults={key: default for key, (_, default) in fields.items()})
    for key, (param, default) in fields.items():
        if key in st.session_state and _allowed(st.session_state[key], (valid or {}).get(key)):
            continue
        value = default
        raw = st.query_params.get_all(param)
        if raw:
            try:
                value = _decode(raw, default)
            except (TypeError, ValueError):
                value = default
        elif key in saved:
            value = saved[key]
        allowed = (valid or {}).get(key)
        if allowed is not None:
            if isinstance(value, list):
                value = [v for v in value if v in allowed]
            elif value not in allowed:
                value = default
        st.session_state[key] = value  # widgets then take no default of their own


def save(page: str, fields: dict[str, tuple[str, Any]], values: dict[str, Any]) -> None:
    """After a page's widgets: write their values to the URL (defaults left out) and the session."""
    st.session_state[f"_saved_{page}"] = dict(values)
    for key, (param, default) in fields.items():
        value = values.get(key, default)
        if value == default or value == []:
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get_all(param) != (
            [str(v) for v in value] if isinstance(value, (list, tuple)) else [_encode(value)]
        ):
            st.query_params[param] = _encode(value)
