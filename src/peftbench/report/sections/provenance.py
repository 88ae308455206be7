"""Provenance: per study, every field of the trials' provenance, with how many trials had each value."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from peftbench.report.page import Page, esc, table_html


def _flatten(prov: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in prov.items():
        if isinstance(value, dict) and key in ("versions", "data"):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif key != "start_time":
            text = "-" if value is None else json.dumps(value, sort_keys=True)
            out[prefix + key] = value if isinstance(value, str) else text
    return out


def provenance_section(page: Page, records: pd.DataFrame) -> None:
    page.add("<h2>Provenance</h2>")
    for study, grp in records.groupby("study", sort=False):
        provs = [p for p in grp.get("provenance", pd.Series(dtype=object)) if isinstance(p, dict)]
        if not provs:
            page.not_run(f"Study {study}: the records carry no provenance.")
            continue
        counts: dict[str, Counter] = {}
        for prov in provs:
            for key, value in _flatten(prov).items():
                counts.setdefault(key, Counter())[value] += 1
        rows = [[k, "; ".join(v if len(c) == 1 else f"{v} ({n} trials)" for v, n in c.most_common())]
                for k, c in counts.items()]
        starts = sorted(p["start_time"] for p in provs if p.get("start_time"))
        if starts:
            rows.append(["trials started", f"{starts[0]} ... {starts[-1]}"])
        page.add(f"<h3>Study {esc(study)} ({len(provs)} trials)</h3>" + table_html(["field", "value"], rows))
        if len(counts.get("data.split_hash", ())) > 1:
            page.not_run(f"Study {study}: trials trained on different data splits (split_hash differs).")
