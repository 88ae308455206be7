"""A race's decisions (studies/race.py), in tables of their own: the race, each round, and each
configuration's standing after each round (raced out or still in, with its P(best) and share tied).

The trials of a race are ordinary trials in the trials table, never changed by it: "raced out" lives here.
Like the side-by-side table, these are created when first written, so a store without them simply holds
no race, the schema version is unchanged and an older peftbench still reads the store. A round's decision
is written once its trials have finished, in one transaction, so a race killed and started again reads
every round it decided and continues with the next.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import pandas as pd

RACE_TABLES = """
CREATE TABLE IF NOT EXISTS races (
    race_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS race_rounds (
    race_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    leader TEXT,
    p_best REAL,
    tied_json TEXT NOT NULL,
    stop TEXT,
    trials INTEGER NOT NULL,
    notes_json TEXT NOT NULL,
    decided_at REAL NOT NULL,
    PRIMARY KEY (race_id, round)
);
CREATE TABLE IF NOT EXISTS race_standings (
    race_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    config TEXT NOT NULL,
    label TEXT NOT NULL,
    seeds INTEGER NOT NULL,
    scheduled INTEGER NOT NULL,
    score REAL,
    p_best REAL,
    share_tied REAL,
    spread REAL,
    status TEXT NOT NULL,
    PRIMARY KEY (race_id, round, config)
);
"""
STANDING_COLUMNS = ("config", "label", "seeds", "scheduled", "score", "p_best", "share_tied", "spread", "status")


def _null(value: Any) -> Any:
    """NaN is stored as NULL (and read back as NaN by pandas)."""
    return None if isinstance(value, float) and value != value else value


def save_round(conn: sqlite3.Connection, race_id: str, study: str, settings: dict[str, Any],
               round_row: dict[str, Any], standings: list[dict[str, Any]]) -> None:
    """Write one round's decision (and the race's row, the first time) in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in (s for s in RACE_TABLES.split(";") if s.strip()):
            conn.execute(statement)  # executescript would commit the open transaction first
        conn.execute("INSERT OR IGNORE INTO races VALUES (?, ?, ?, ?)",
                     (race_id, study, json.dumps(settings, sort_keys=True), time.time()))
        conn.execute("INSERT OR REPLACE INTO race_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (race_id, round_row["round"], round_row["leader"], _null(round_row["p_best"]),
                      json.dumps(list(round_row["tied"])), round_row["stop"], round_row["trials"],
                      json.dumps(list(round_row["notes"])), time.time()))
        conn.executemany("INSERT OR REPLACE INTO race_standings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [(race_id, round_row["round"], *[_null(s[c]) for c in STANDING_COLUMNS])
                          for s in standings])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='race_rounds'").fetchone() \
        is not None


def load_rounds(conn: sqlite3.Connection, race_id: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(round row, its standings) of every decided round of a race, in order; [] when none."""
    if not _has_tables(conn):
        return []
    rounds = conn.execute("SELECT round, leader, p_best, tied_json, stop, trials, notes_json FROM race_rounds "
                          "WHERE race_id = ? ORDER BY round", (race_id,)).fetchall()
    out = []
    for rnd, leader, p_best, tied, stop, trials, notes in rounds:
        rows = conn.execute(f"SELECT {', '.join(STANDING_COLUMNS)} FROM race_standings WHERE race_id = ? AND "
                            "round = ? ORDER BY rowid", (race_id, rnd)).fetchall()
        row = {"round": rnd, "leader": leader, "p_best": float("nan") if p_best is None else p_best,
               "tied": json.loads(tied), "stop": stop, "trials": trials, "notes": json.loads(notes)}
        out.append((row, [{c: (float("nan") if v is None and c in ("score", "p_best", "share_tied", "spread")
                              else v) for c, v in zip(STANDING_COLUMNS, r)} for r in rows]))
    return out


def races_frame(conn: sqlite3.Connection, study: str | None = None) -> pd.DataFrame:
    """One row per (race, round, configuration), with the race's study, settings and the round's outcome;
    empty when the store holds no race."""
    columns = ["race_id", "study", "settings", "round", "leader", "round_p_best", "tied", "stop", "trials",
               *STANDING_COLUMNS]
    if not _has_tables(conn):
        return pd.DataFrame(columns=columns)
    query = ("SELECT r.race_id, r.study, r.settings_json, o.round, o.leader, o.p_best, o.tied_json, o.stop, "
             f"o.trials, {', '.join('s.' + c for c in STANDING_COLUMNS)} FROM races r "
             "JOIN race_rounds o ON o.race_id = r.race_id "
             "JOIN race_standings s ON s.race_id = o.race_id AND s.round = o.round")
    args: list[Any] = []
    if study:
        query += " WHERE r.study = ?"
        args.append(study)
    rows = conn.execute(query + " ORDER BY r.started_at, o.round, s.rowid", args).fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    frame["settings"] = frame["settings"].map(json.loads)
    frame["tied"] = frame["tied"].map(json.loads)
    return frame
