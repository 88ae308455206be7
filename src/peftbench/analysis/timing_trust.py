"""Which timings a choice may read: a timing measured while other work shared the machine is left out (not
averaged in as if clean), and a merged figure counts only when the merged model gives the unmerged model's
outputs (otherwise the unmerged figure is the deployed one).

Left out rather than marked: a figure known to be distorted would still move the ranking, whatever its mark.
A method's clean seeds still count; a method with no clean figure lacks the metric, so the counting rule
(scores.COUNTING_RULE) leaves it out for every candidate, with a note naming who and why.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from peftbench.stats.summary import numeric_column

# timing column -> the record's flag saying it was contended (measure/machine_load.py)
TIMING_FLAGS = {
    "train_seconds": "timing_contended",
    "latency_p50_ms": "inference_timing_contended",
    "throughput_per_s": "inference_timing_contended",
    "merged_latency_p50_ms": "merged_timing_contended",
    "merged_throughput_per_s": "merged_timing_contended",
}
# Classifiers: a merged model agrees when its largest logit difference on the probe rows is within this share
# of the logits' scale (max |logit|, at least 1). Merging re-associates W x + B(A x) into (W + BA) x: in
# float32 (eps 1.2e-7) that is rounding of a few ulps per sum, growing with depth and width (tests/test_trial.py
# bounds the tiny model's under 1e-4 absolute); a merge that changes the model (a 4-bit base re-quantised, a
# wrong scaling) moves logits by 1e-2 and more. 1e-3 of the scale sits between, with room on both sides.
MERGE_LOGIT_TOLERANCE = 1e-3
_LOAD = re.compile(r"load average ([0-9.]+)")  # as measure/machine_load.py words it
RULE = ("contended timings are left out of every score, limit and front (a method's clean seeds still count; a "
        "method with none lacks the metric, so it is left out for all, with a note); a merged figure counts "
        f"only when the merged model agrees (classifiers: merge_max_logit_diff <= {MERGE_LOGIT_TOLERANCE:g} x "
        "max(1, merge_logit_scale), the unmerged logits' largest magnitude; generate: merge_same_greedy, "
        "identical greedy tokens), else the unmerged figure is the deployed one")


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(False, index=frame.index)
    return frame[column].map(lambda v: _is_flag(v) and bool(v))


def _is_flag(v) -> bool:
    """A stored yes/no: a bool, or 0/1 as a store may read it back (never NaN or None)."""
    return isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating))
                                               and not pd.isna(v) and v in (0, 1))


def merge_agrees(frame: pd.DataFrame) -> pd.Series:
    """Per trial: the merged model's outputs were checked and match (False where unchecked or different)."""
    greedy = frame["merge_same_greedy"] if "merge_same_greedy" in frame else pd.Series(None, index=frame.index)
    diff, scale = numeric_column(frame, "merge_max_logit_diff"), numeric_column(frame, "merge_logit_scale")
    within = diff <= MERGE_LOGIT_TOLERANCE * scale.fillna(1.0).clip(lower=1.0)
    checked = greedy.map(_is_flag)
    return _flag(frame, "merge_same_greedy").where(checked, within).astype(bool)


def clean_timings(records: pd.DataFrame) -> pd.DataFrame:
    """The records with every contended timing set to NaN (a copy)."""
    frame = records.copy()
    for column, flag in TIMING_FLAGS.items():
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").where(~_flag(frame, flag))
    return frame


def contended_timings(records: pd.DataFrame) -> dict[str, dict]:
    """Method -> {"columns": timings left out, "hits": trials hit per column, "trials": its trials, "loads":
    the load averages and the reasons the notes recorded}, for every method with a contended timing."""
    found: dict[str, dict] = {}
    for column, flag in TIMING_FLAGS.items():
        if column not in records or flag not in records:
            continue
        note = flag.replace("contended", "note")
        narrow = records[[c for c in ("method", column, flag, note) if c in records]]  # cheap to group
        for method, grp in narrow.groupby("method", sort=False):
            hit = _flag(grp, flag) & pd.to_numeric(grp[column], errors="coerce").notna()
            if not hit.any():
                continue
            entry = found.setdefault(str(method), {"columns": [], "hits": {}, "trials": len(grp), "loads": [],
                                                    "whys": []})
            entry["columns"].append(column)
            entry["hits"][column] = int(hit.sum())
            whys = grp.get(note, pd.Series(dtype=object))[hit]
            texts = [n for n in whys if isinstance(n, str)]
            entry["whys"] += texts
            entry["loads"] += [float(x) for n in texts for x in _LOAD.findall(n)]
    return found



def _load_text(loads: list[float]) -> str:
    if not loads:
        return ""
    low, high = min(loads), max(loads)
    return f"; load average {low:.1f}" + (f"-{high:.1f}" if high > low else "")


def _merge_disagrees(records: pd.DataFrame) -> list[str]:
    if "can_merge" not in records:
        return []
    mergeable = records["can_merge"].fillna(False).astype(bool)
    merged = numeric_column(records, "merged_latency_p50_ms").notna()
    bad = mergeable & merged & ~merge_agrees(records)
    return [str(m) for m in dict.fromkeys(records.loc[bad, "method"])]


def _merge_line(method: str) -> str:
    return (f"{method}: the merged model's outputs do not match the unmerged model's (or were not checked), "
            "so its deployed latency and throughput are the unmerged figures")


def timing_notes(records: pd.DataFrame) -> dict[str, list[str]]:
    """Method -> one line naming its timings left out for contention (and in how many of its trials), and
    one if its merge did not agree."""
    notes: dict[str, list[str]] = {}
    for method, entry in contended_timings(records).items():
        cols = ", ".join(f"{c} ({entry['hits'][c]}/{entry['trials']})" for c in entry["columns"])
        why = f" ({entry['whys'][0]})" if entry["whys"] else ""
        notes.setdefault(method, []).append(f"{method}: left out, measured while other work shared the machine"
                                            f"{why}: {cols} (trials hit / trials)")
    for method in _merge_disagrees(records):
        notes.setdefault(method, []).append(_merge_line(method))
    return notes


def timing_summary(records: pd.DataFrame, methods: list[str] | None = None) -> list[str]:
    """The same facts in a few lines for a terminal: methods whose left-out timings are the same columns in
    all their trials share one line; every trial's reason stays in `peftbench results`."""
    found = contended_timings(records)
    keep = [m for m in (methods if methods is not None else found) if m in found]
    groups: dict[tuple, list[str]] = {}
    partial: list[str] = []
    for method in keep:
        entry = found[method]
        if all(h == entry["trials"] for h in entry["hits"].values()):
            groups.setdefault(tuple(entry["columns"]), []).append(method)
        else:
            partial.append(method)
    lines = [f"{', '.join(cols)} of {', '.join(ms)} left out (every trial measured while other work shared "
             f"the machine{_load_text([x for m in ms for x in found[m]['loads']])})" for cols, ms in groups.items()]
    notes = timing_notes(records)
    lines += [notes[m][0] for m in partial]
    lines += [_merge_line(m) for m in _merge_disagrees(records) if methods is None or m in methods]
    return lines
