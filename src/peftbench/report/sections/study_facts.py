"""What the sections ask of the records: the kind of study, the name of its metric, what was measured,
which methods collapsed."""

from __future__ import annotations

import pandas as pd

from peftbench.analysis.selection import collapsed_mask

COLLAPSED_MARK = " [collapsed]"


def _tasks(records: pd.DataFrame) -> list:
    """The tasks of the records (their own records name them; a task not registered here is left out)."""
    from peftbench.tasks import task_named, task_names

    names = records["task"].dropna().unique() if "task" in records else []
    return [task_named(n) for n in names if n in task_names()]


def generate_study(records: pd.DataFrame) -> bool:
    """Records of a task whose model writes its answers (greedy generations, exact match, time to first
    token): the report shows its Generation section."""
    return any(t.writes_answers for t in _tasks(records))


def metric_name(records: pd.DataFrame) -> str:
    """What the records' accuracy role measures, for axes and headings (the task's headline)."""
    labels = {t.headline_label for t in _tasks(records)}
    return labels.pop() if len(labels) == 1 else "accuracy"


def measured(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())


def collapsed_methods(records: pd.DataFrame) -> set[str]:
    return set(records.loc[collapsed_mask(records), "method"].astype(str))
