"""What truncation at max_length cut, counted per split: a row the model sees shortened is never shortened in
silence. Counts are {rows, rows_cut, tokens_lost}; a split with more than 1% of its rows cut gets a note (when
the study starts, and under the results table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

NOTED_SHARE = 0.01  # a split with more than this share of rows cut is noted


def cut_counts(full_lengths: Sequence[int], kept_lengths: Sequence[int]) -> dict[str, int]:
    """Rows, rows cut (kept shorter than whole) and tokens lost, from each row's whole and kept length in
    tokens (a row dropped for want of room keeps 0)."""
    full = np.asarray(full_lengths, dtype=np.int64)
    kept = np.asarray(kept_lengths, dtype=np.int64)
    return {"rows": len(full), "rows_cut": int((kept < full).sum()),
            "tokens_lost": int(np.maximum(full - kept, 0).sum())}


def noted_splits(truncation: Mapping | None) -> dict[str, dict[str, int]]:
    """The splits of a truncation record with more than 1% of their rows cut."""
    out = {}
    for split, c in (truncation or {}).items():
        if isinstance(c, Mapping) and c.get("rows") and c.get("rows_cut", 0) > NOTED_SHARE * c["rows"]:
            out[str(split)] = {k: int(c.get(k, 0)) for k in ("rows", "rows_cut", "tokens_lost")}
    return out


def truncation_note(truncation: Mapping | None, max_length: int | None = None) -> str | None:
    """One line naming each split with more than 1% of its rows cut (None: no such split)."""
    noted = noted_splits(truncation)
    if not noted:
        return None
    parts = [f"{split} {c['rows_cut']}/{c['rows']} rows ({100 * c['rows_cut'] / c['rows']:.1f}%, "
             f"{c['tokens_lost']} tokens lost)" for split, c in noted.items()]
    limit = f" at max_length {max_length}" if max_length else ""
    return f"truncated{limit}: " + "; ".join(parts) + " (--max-length keeps more)"
