"""What the sections ask of the records: the kind of study, the name of its metric, what was measured,
which methods collapsed."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.selection import collapsed_mask

COLLAPSED_MARK = " [collapsed]"


def generate_study(records: pd.DataFrame) -> bool:
    """--task generate records: their accuracy is exact match and their latency the time to first token."""
    return "task" in records and bool((records["task"] == "generate").any())


def metric_name(records: pd.DataFrame) -> str:
    """What the records' accuracy column measures, for axes and headings."""
    return "exact match" if generate_study(records) else "accuracy"


def measured(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())


def collapsed_methods(records: pd.DataFrame) -> set[str]:
    return set(records.loc[collapsed_mask(records), "method"].astype(str))
