"""Upgrading a store written by an earlier peftbench, in place, inside one transaction: a crash or an error
leaves the store exactly as it was. Every trial is kept.

Schema 1 -> 2: the history table, and 'pruned' in the status CHECK (SQLite cannot alter a CHECK, so the
table is rebuilt). Schema 2 -> 3: every stored record (trials and history) brought to record version 3
(record/migrate.py: a generate record's aliases dropped, every figure kept under its own name)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from peftbench.errors import PeftbenchError
from peftbench.record.migrate import upgrade_record
from peftbench.store.tables import HISTORY_TABLE, TRIALS_TABLE

TO_VERSION = 3
_REBUILD_1_TO_2 = [
    "ALTER TABLE trials RENAME TO trials_v1", "DROP INDEX IF EXISTS trials_study",
    *[s for s in (TRIALS_TABLE + HISTORY_TABLE).split(";") if s.strip()],
    "INSERT INTO trials SELECT trial_id, study, method, family, seed, train_size, status, error, attempts, "
    "spec_json, record_json, started_at, finished_at FROM trials_v1", "DROP TABLE trials_v1",
]


def _roles_of(task: str) -> dict[str, str]:
    from peftbench.tasks import task_named, task_names

    return task_named(task).roles if task in task_names() else {}


def _upgrade_records(conn: sqlite3.Connection) -> None:
    for table, key in (("trials", "trial_id"), ("trial_history", "rowid")):
        rows = conn.execute(f"SELECT {key}, record_json FROM {table} WHERE record_json IS NOT NULL").fetchall()
        for row_key, text in rows:
            upgraded = upgrade_record(json.loads(text), _roles_of)
            conn.execute(f"UPDATE {table} SET record_json = ? WHERE {key} = ?",
                         (json.dumps(upgraded, sort_keys=True), row_key))


def migrate(conn: sqlite3.Connection, path: Path, from_version: int) -> int:
    """Bring the store at `conn` from `from_version` to TO_VERSION; returns `from_version`."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        if from_version < 2:
            for statement in _REBUILD_1_TO_2:
                conn.execute(statement)
        _upgrade_records(conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(TO_VERSION),))
        conn.execute("COMMIT")
    except (sqlite3.Error, ValueError) as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise PeftbenchError(f"store {path} has schema version {from_version} and could not be upgraded to "
                             f"{TO_VERSION} ({exc}); it is unchanged") from None
    return from_version
