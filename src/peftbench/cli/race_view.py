"""The races a store holds (store/races.py) as rich tables, and as notes beside a recommendation."""

from __future__ import annotations

import pandas as pd
from rich.markup import escape
from rich.table import Table

from peftbench.report.sections.races import COLUMNS, race_summaries


def race_tables(frame: pd.DataFrame) -> list[Table]:
    """One table per race in `frame` (races_frame's rows), in the order they were run."""
    tables = []
    for summary in race_summaries(frame):
        table = Table(title=escape(summary.title), title_justify="left")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col in ("configuration", "status") else "right")
        for row in summary.rows:
            table.add_row(*map(escape, row))
        tables.append(table)
    return tables


def race_notes(frame: pd.DataFrame) -> list[str]:
    """One line per race: how it ended and which configurations it raced out (fewer seeds behind them)."""
    out = []
    for summary in race_summaries(frame):
        raced = [f"{row[0]} ({row[1]} seed{'s' if row[1] != '1' else ''})" for row in summary.rows
                 if row[5].startswith("raced out")]
        out.append(summary.title + (f"; raced out, with fewer seeds: {', '.join(raced)}" if raced else ""))
    return out
