"""The side-by-side inference pass's figures (studies/side_by_side.py): one row per (pass, trial).

A table of its own, created when first written: a store without it simply has no side-by-side figures, so
the schema version is unchanged and an older peftbench still reads the store. Each row keeps the raw
round-robin samples (batch-1 latencies per round, one batch's seconds per round), so the decision layer can
resample rounds in pairs (analysis/timing_noise.py); `attach` joins each trial's latest pass to its record
as the `side_*` columns declared in record/fields.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

SIDE_BY_SIDE_TABLE = """
CREATE TABLE IF NOT EXISTS side_by_side (
    pass_id TEXT NOT NULL,
    trial_id TEXT NOT NULL,
    form TEXT NOT NULL,
    latency_ms_json TEXT NOT NULL,
    batch_seconds_json TEXT NOT NULL,
    batch_rows INTEGER NOT NULL,
    device TEXT,
    threads INTEGER,
    measured_at REAL NOT NULL,
    PRIMARY KEY (pass_id, trial_id)
);
"""
SIDE_COLUMNS = ("side_pass", "side_form", "side_rounds", "side_latency_p50_ms", "side_latency_p25_ms",
                "side_latency_p75_ms", "side_throughput_per_s", "side_latency_rounds", "side_batch_seconds",
                "side_batch_rows")


@dataclass(frozen=True)
class PassRow:
    trial_id: str
    form: str  # "merged" or "as trained": the deployed form the trial's own figures describe
    latency_ms: list[list[float]]  # rounds x calls, batch-1 latencies
    batch_seconds: list[float]  # per round, one batch of `batch_rows` rows
    batch_rows: int


def save_pass(conn: sqlite3.Connection, pass_id: str, rows: list[PassRow], device: str, threads: int) -> None:
    """Write one pass's rows in one transaction (the table is created when missing)."""
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SIDE_BY_SIDE_TABLE)
        conn.executemany(
            "INSERT OR REPLACE INTO side_by_side VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(pass_id, r.trial_id, r.form, json.dumps(r.latency_ms), json.dumps(r.batch_seconds), r.batch_rows,
              device, threads, now) for r in rows])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def latest_rows(conn: sqlite3.Connection) -> pd.DataFrame:
    """Per trial, its row of the latest pass that timed it (empty when the store has no such table)."""
    try:
        rows = conn.execute(
            "SELECT s.pass_id, s.trial_id, s.form, s.latency_ms_json, s.batch_seconds_json, s.batch_rows "
            "FROM side_by_side s JOIN (SELECT trial_id, MAX(measured_at) AS at FROM side_by_side "
            "GROUP BY trial_id) l ON s.trial_id = l.trial_id AND s.measured_at = l.at").fetchall()
    except sqlite3.OperationalError:  # no such table: no pass ever ran on this store
        return pd.DataFrame(columns=["trial_id", *SIDE_COLUMNS])
    out = []
    for pass_id, trial_id, form, lat_json, sec_json, batch_rows in rows:
        lat, sec = np.asarray(json.loads(lat_json), float), np.asarray(json.loads(sec_json), float)
        p25, p50, p75 = np.percentile(lat, [25, 50, 75]) if lat.size else (np.nan,) * 3
        out.append({"trial_id": trial_id, "side_pass": pass_id, "side_form": form, "side_rounds": len(sec),
                    "side_latency_p50_ms": float(p50), "side_latency_p25_ms": float(p25),
                    "side_latency_p75_ms": float(p75),
                    "side_throughput_per_s": float(batch_rows * len(sec) / sec.sum()) if sec.sum() > 0 else np.nan,
                    "side_latency_rounds": lat_json, "side_batch_seconds": sec_json, "side_batch_rows": batch_rows})
    return pd.DataFrame(out, columns=["trial_id", *SIDE_COLUMNS])


def attach(conn: sqlite3.Connection, records: pd.DataFrame) -> pd.DataFrame:
    """`records` with the side_* columns of each trial's latest pass (NaN where none timed it)."""
    if records.empty or "trial_id" not in records:
        return records
    side = latest_rows(conn)
    if side.empty:
        return records
    merged = records.drop(columns=[c for c in SIDE_COLUMNS if c in records]).merge(side, on="trial_id",
                                                                                   how="left")
    merged.index = records.index
    return merged
