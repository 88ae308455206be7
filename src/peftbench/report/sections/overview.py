"""The report's heading: the setup, the store, how many trials of each study, and when it was written."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from peftbench.analysis.recommend import Prepared
from peftbench.report.page import Page, esc


def overview_section(page: Page, records: pd.DataFrame, db_path: Path, prep: Prepared) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    counts = ", ".join(f"{s}: {n} trials" for s, n in records["study"].value_counts(sort=False).items())
    setup = f"setup {esc(prep.setup_label)} - " if prep.setup_label else ""
    page.add(f"<h1>peftbench report</h1><p class='muted'>{setup}store {esc(db_path)} - {esc(counts)} - "
             f"written {stamp}</p>")
