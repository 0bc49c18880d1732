"""Annotate: a review queue to find and fix wrong labels; every change is kept, exported, retrained on."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.labels.export import log_text, manifest_rows, rows_text
from core.labels.oof import source_title
from core.labels.oof import sources as oof_sources
from core.labels.queue import DEFAULT_SOURCE, STRATEGIES, review_item, review_queue, suggesting_model
from core.labels.retrain import retrain
from core.labels.session import current_labels, label_db_url
from core.labels.store import UNDO, ConflictError, LabelStoreError, redact_url
from core.workspace import WorkspaceBusyError
from ui import state as url_state
from ui.frame import workspace
from ui.loaders import explorer_for, label_store
from ui.safe_text import md, md_join
from ui.widgets import MODEL_NAMES, StreamlitProgress, image

ws = workspace()
ex = explorer_for(ws)
st.title("Annotate")

# The labeler's name and the queue live in this tab's URL: a reload keeps them, and two people
# labelling side by side (two tabs, two browsers) each keep their own.
FIELDS = {"ann_user": ("labeler", ""), "ann_strategy": ("queue", next(iter(STRATEGIES)))}
url_state.restore("annotate", FIELDS, valid={"ann_strategy": list(STRATEGIES)})
with st.sidebar:
    st.subheader("Labeler")
    user = st.text_input("Your name (recorded with every change)", key="ann_user").strip()
try:
    store = label_store(ws)
except LabelStoreError as exc:
    st.error(md(exc))
    st.stop()
st.caption(
    f"Corrections are stored in {md(redact_url(label_db_url(ws)))}; every change is a row, so nothing is lost and undo is free."
)

state = st.session_state
state.setdefault("ann_skipped", set())
state.setdefault("ann_done", [])  # this session's change ids, newest last (for undo)
state.setdefault("ann_pinned", None)  # an item brought back by undo

c1, c2 = st.columns([2, 1])
strategy = c1.selectbox("Review queue", list(STRATEGIES), format_func=STRATEGIES.get, key="ann_strategy")
url_state.save("annotate", FIELDS, {"ann_user": user, "ann_strategy": strategy})
latest = store.reviewed()  # one read of the history per run
reviewed = {item for item, action in latest.items() if action != UNDO}  # an undone change un-reviews its image
c2.metric("Reviewed in this workspace", f"{len(reviewed):,} / {len(ws.items):,}", help="undone changes do not count")

source = DEFAULT_SOURCE
if strategy == "label_errors":
    source = st.selectbox(
        "Out-of-fold probabilities from",
        oof_sources(ws),
        format_func=lambda s: source_title(ws, s),
        key="ann_source",
        help="The logistic regression takes seconds. The best and the multimodal model are refitted 5 times "
        "(about a minute on the demo), and again after every label change.",
    )
current = current_labels(ws, store)
with st.spinner("Building the queue…"):
    exclude = set(reviewed) | state["ann_skipped"]
    queue = review_queue(ws, strategy, current=current, exclude=exclude, limit=200, source=source, progress=StreamlitProgress())
pinned = ex.row_of(state["ann_pinned"]) if state["ann_pinned"] else None
if pinned is not None:  # the item an undo just reopened comes first
    queue = [review_item(ws, pinned, "reopened by undo"), *(q for q in queue if q.row != pinned)]
if not queue:
    st.success("This queue is empty: every image in it has been reviewed or skipped.")
    if state["ann_skipped"] and st.button("Bring back the skipped images"):
        state["ann_skipped"] = set()
        st.rerun()
else:
    q = queue[0]
    # a button press reruns the page, which recomputes the queue: if another labeler reviewed the image
    # this session was shown, the head is now another image, which the press must not label unseen
    shown_before, state["ann_shown"] = state.get("ann_shown"), q.item
    row = q.row
    labels_now = current[row]
    n_queued = f"**{len(queue)}{'+' if len(queue) >= 200 else ''}** image{'' if len(queue) == 1 else 's'}"
    st.markdown(f"{n_queued} in this queue · queued because: _{md(q.reason)}_")
    left, right = st.columns([1, 2], gap="large")
    with left:
        image(ws.items.at[row, "path"])
        st.caption(md(q.item))
    with right:
        st.markdown("Current label: " + md_join(labels_now, empty="_none_"))
        pred = ex.prediction(row)
        # the queue suggests from the best model, shown beside the two (label errors: from the out-of-fold source)
        best, from_oof = suggesting_model(ws), strategy == "label_errors" and q.row != pinned
        shown = ["baseline", "multimodal"] + ([best] if not from_oof and best not in ("baseline", "multimodal") else [])
        st.markdown(
            "  \n".join(f"{MODEL_NAMES[m]}: " + ", ".join(f"{md(n)} ({p:.2f})" for n, p in pred.rankings[m][:3]) for m in shown)
        )
        by = f"{MODEL_NAMES[best]}, best on held-out labelled images"
        if from_oof:
            by = f"out-of-fold probabilities of {source_title(ws, source)}"
        # the suggestion, unless it is the current label: then the other model's top label, then the runners-up
        # (a low-margin image's alternative); "Accept" never just repeats "Keep"
        ranked = [
            ([pred.rankings[m][k][0]], f"{MODEL_NAMES[m]}'s {('top', 'second')[k]} label")
            for k in (0, 1)
            for m in ("multimodal", "baseline")
            if len(pred.rankings.get(m, [])) > k
        ]
        offer, offer_by = next(
            ((lab, why) for lab, why in [(q.suggestion, by), *ranked] if lab and sorted(lab) != sorted(labels_now)), (None, None)
        )
        if q.suggestion:
            said = f"**Suggested label**: {md_join(q.suggestion)} ({md(by)})"
            if offer is not None and offer_by != by:  # the suggestion is the current label
                said += f": the current label, so Accept offers {md_join(offer)} ({md(offer_by)})"
            st.markdown(said)
        if strategy == "label_errors" and bool(ws.items.at[row, "labelled"]):
            if {"baseline", "multimodal"} <= set(ws.crossfit_models):
                st.caption(
                    "Both models' numbers are cross-validated: neither was trained on this image. This queue ranks and "
                    "suggests from out-of-fold probabilities, and leaves out images whose label both models pick."
                )
            else:
                st.caption(
                    "Both models were trained with this image's current label, so they tend to repeat it, right or "
                    "wrong; this queue ranks and suggests from out-of-fold probabilities: models that never saw this "
                    "label. Refit the workspace for cross-validated numbers here."
                )
        st.markdown("Phrases: _" + md_join((p for p, _ in pred.phrases[:5]), empty="") + "_")
        note = st.text_input("Note (optional)", key=f"ann_note_{row}")

        def record(action, **kwargs) -> None:
            if shown_before != q.item:
                st.warning(f"{md(shown_before)} was reviewed meanwhile by someone else: nothing saved; here is the next image.")
                return
            if not user:
                st.error("Type your name in the sidebar first: every change records who made it.")
                return
            try:
                change = action(user=user, strategy=strategy, note=note, **kwargs)
            except ConflictError as exc:
                st.warning(md(exc))
                return
            except (ValueError, LabelStoreError) as exc:
                st.error(md(exc))
                return
            state["ann_done"].append(change.id)
            state["ann_pinned"] = None
            st.rerun()

        b1, b2, b3 = st.columns(3)
        accept = f"Accept: {md_join(offer)}" if offer else "Accept: (both models agree with it)"
        if b1.button(
            accept, key="ann_accept", shortcut="A", type="primary", width="stretch", disabled=offer is None, help=accept
        ):
            record(store.set_labels, item=q.item, labels=offer, expected=labels_now)
        if b2.button("Keep current label", key="ann_keep", shortcut="K", width="stretch", disabled=not labels_now):
            record(store.set_labels, item=q.item, labels=labels_now, expected=labels_now)
        if b3.button("Not sure", key="ann_unsure", shortcut="N", width="stretch"):
            record(store.mark_unsure, item=q.item)
        if ws.multilabel:
            chosen = st.multiselect("Label set", store.taxonomy, default=labels_now, key=f"ann_multi_{row}")
            if st.button("Save label set", key="ann_save_multi", shortcut="S"):
                record(store.set_labels, item=q.item, labels=chosen, expected=labels_now)
        else:
            o1, o2 = st.columns([3, 1])
            other = o1.selectbox("Another label (type to search)", store.taxonomy, index=None, key=f"ann_other_{row}")
            if o2.button("Set", key="ann_set", shortcut="S", disabled=other is None, width="stretch"):
                record(store.set_labels, item=q.item, labels=[other], expected=labels_now)
        with st.expander("A label that is not in the taxonomy yet"):
            new_label = st.text_input("New label", key=f"ann_new_{row}")
            if st.button("Add this label and set it", key="ann_add", disabled=not new_label.strip()):
                labels = [*labels_now, new_label.strip()] if ws.multilabel else [new_label.strip()]
                record(store.set_labels, item=q.item, labels=labels, expected=labels_now, add_label=True)
        s1, s2 = st.columns(2)
        if s1.button("Skip", key="ann_skip", shortcut="J", width="stretch"):
            state["ann_skipped"].add(q.item)
            state["ann_pinned"] = None
            st.rerun()
        if s2.button("Undo my last change", key="ann_undo", shortcut="U", disabled=not state["ann_done"], width="stretch"):
            try:
                last = state["ann_done"].pop()
                change = store.undo(last, user=user or "unknown")
                state["ann_pinned"] = change.item
                st.rerun()
            except ConflictError as exc:  # someone changed the item since: their change stays
                st.warning(md(exc))
            except (ValueError, LabelStoreError) as exc:
                st.error(md(exc))
        st.caption("Shortcuts: A accept · K keep · N not sure · S set · J skip · U undo")

st.subheader("Recent changes")
history = store.history()
if history:
    recent = pd.DataFrame([c.to_dict() for c in history[-20:][::-1]])
    recent["old"] = recent["old"].map(", ".join)
    recent["new"] = recent["new"].map(", ".join)
    st.dataframe(
        recent[["id", "at", "user", "action", "item", "old", "new", "strategy", "note"]], hide_index=True, width="stretch"
    )
else:
    st.caption("No change yet.")

st.subheader("Export and retrain")
e1, e2, e3 = st.columns(3)
e1.download_button(
    "Corrected manifest (CSV)",
    lambda: rows_text(manifest_rows(ws, store)),  # built on click, not on every rerun
    file_name="manifest.corrected.csv",
    mime="text/csv",
    help="Every row with its current labels; save it in the dataset's folder (image paths are relative to it).",
    key="ann_dl_manifest",
)
e2.download_button(
    "Correction log (CSV)", lambda: log_text(store), file_name="corrections.csv", mime="text/csv", key="ann_dl_log"
)
e3.download_button(
    "Correction log (JSONL)",
    lambda: log_text(store, "jsonl"),
    file_name="corrections.jsonl",
    mime="application/json",
    key="ann_dl_jsonl",
)
if st.button("Retrain the classifiers on the corrected labels", key="ann_retrain"):
    try:
        with st.status("Retraining (embeddings are reused)…", expanded=True) as status:
            report = retrain(ws, store, progress=StreamlitProgress())
            status.update(label="Retrained", state="complete", expanded=False)
        state["ann_report"] = report.to_dict()
        st.rerun()
    except (ValueError, LabelStoreError, WorkspaceBusyError) as exc:
        st.error(md(exc))
if state.get("ann_report"):
    rep = state["ann_report"]
    st.markdown(f"**Last retrain**: {rep['n_labelled']:,} labelled training images, {rep['n_corrected']} corrected.")
    table = pd.concat({"before": pd.DataFrame(rep["before"]).T, "after": pd.DataFrame(rep["after"]).T}, axis=1).rename(
        index=MODEL_NAMES
    )
    st.dataframe(table.style.format("{:.3f}"), width="stretch")
    if rep.get("delta"):
        st.markdown("**Change on the test split, with a 95% bootstrap interval** (an interval across 0 may be noise)")
        st.dataframe(
            pd.DataFrame(
                {
                    MODEL_NAMES[m]: {
                        "metric": d["metric"],
                        "change": f"{d['delta']:+.3f}",
                        "95% interval": f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                        "reading": "may be noise" if d["low"] <= 0 <= d["high"] else ("better" if d["low"] > 0 else "worse"),
                        "test images": d["n"],
                    }
                    for m, d in rep["delta"].items()
                }
            ).T,
            width="stretch",
        )
