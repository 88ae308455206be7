"""Sample generations: the first test rows of the best trial, next to the reference and the untrained
model's answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from peftbench.report.page import esc, table_html
from peftbench.tasks.generate.evaluate import exact_match

SAMPLE_NEWLINE = "⏎"  # generated newlines, shown in a table cell that would fold them away


def sample_trial(records: pd.DataFrame) -> pd.Series | None:
    """The trial whose samples are shown: the best validation exact match (first on ties) holding texts."""
    if "generations" not in records:
        return None
    have = records[records["generations"].map(lambda g: isinstance(g, list) and bool(g))]
    if have.empty:
        return None
    val = pd.to_numeric(have["val_accuracy"], errors="coerce") if "val_accuracy" in have else \
        pd.Series(float("nan"), index=have.index)
    return have.iloc[int(np.argmax(val.fillna(-math.inf).to_numpy()))]  # argmax: the first on ties


def samples_html(records: pd.DataFrame) -> str:
    trial = sample_trial(records)
    if trial is None:
        return "<p class='note'>The records hold no sample generations.</p>"
    zero_shot, references = (v if isinstance(v, list) else [] for v in
                             (trial.get("zero_shot_generations"), trial.get("references")))
    shown = lambda text: str(text).replace("\n", SAMPLE_NEWLINE)
    rows = []
    for i, (gen, ref) in enumerate(zip(trial["generations"], references)):
        rows.append([str(i + 1), shown(ref), shown(zero_shot[i]) if i < len(zero_shot) else "-", shown(gen),
                     "yes" if exact_match(gen, ref) else "no"])
    seed = f", seed {trial['seed']}" if "seed" in trial and not pd.isna(trial["seed"]) else ""
    return (f"<h3>Sample generations: {esc(trial['method'])}{esc(seed)}</h3><p class='muted'>The first test "
            "rows, greedy; the trial with the best validation exact match. Exact match after normalisation "
            f"(case, punctuation, articles); {SAMPLE_NEWLINE} = a newline.</p>"
            + table_html(["#", "reference", "zero-shot output", "trained output", "exact match"], rows))
