"""SQLite store of trials: one row per trial id, each write one transaction, WAL mode.

A study re-run asks the store which trials are finished and runs only the rest. The driver is the
only writer; a lock file beside the database keeps two studies from writing one store at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from peftbench.config.identity import config_key, configuration, label_configurations
from peftbench.config.setup import setup_key, setup_label
from peftbench.errors import PeftbenchError
from peftbench.store.migrate import TO_VERSION, migrate
from peftbench.store.side_by_side import attach as attach_side_by_side
from peftbench.store.tables import SCHEMA

SCHEMA_VERSION = TO_VERSION  # 3: records at record version 3 (record/migrate.py)
APP_ID = "peftbench"
DEFAULT_DB = "peftbench-results/peftbench.db"
FINISHED = ("ok",)
STATUSES = ("running", "ok", "failed", "cancelled", "pruned")

def default_db_path() -> Path:
    return Path(os.environ.get("PEFTBENCH_DB", DEFAULT_DB))


class Store:
    """A peftbench results database. Refuses files it did not create; never overwrites them."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            raise PeftbenchError(f"store {self.path} is a directory, not a database file")
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            raise PeftbenchError(f"store {self.path} does not exist; run a study first")
        self._lock_fd: int | None = None
        self.migrated_from: int | None = None
        # What this call creates, so that a study that cannot start leaves nothing behind (discard_if_unused).
        self.created = not exists
        self._file_existed = self.path.exists()
        self._made_dirs: list[Path] = []
        if exists:
            self._check_foreign()
        else:
            missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dirs = missing
        self.conn: sqlite3.Connection = None  # type: ignore[assignment]
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            if exists:
                self._check_schema()  # before anything writes: a foreign SQLite file stays byte-identical
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if not exists:
                # One script, one transaction: a crash here leaves no half-made store.
                self.conn.executescript(
                    f"BEGIN; {SCHEMA} INSERT OR REPLACE INTO meta VALUES ('app', '{APP_ID}');"
                    f" INSERT OR REPLACE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise PeftbenchError(f"store {self.path} cannot be opened: {exc}") from None
        except PeftbenchError:
            self.close()
            raise
        if not exists:
            self._check_schema()

    # --- opening -------------------------------------------------------------------------------
    def _check_foreign(self) -> None:
        with open(self.path, "rb") as fh:
            header = fh.read(16)
        if header != b"SQLite format 3\x00":
            raise PeftbenchError(f"{self.path} is not a peftbench store (not an SQLite file); refusing to touch it")

    def _check_schema(self) -> None:
        try:
            rows = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            raise PeftbenchError(f"{self.path} is an SQLite file but not a peftbench store; refusing to touch it") \
                from None
        if rows.get("app") != APP_ID:
            raise PeftbenchError(f"{self.path} is an SQLite file but not a peftbench store; refusing to touch it")
        if rows.get("schema_version") in ("1", "2"):
            self.migrated_from = migrate(self.conn, self.path, int(rows["schema_version"]))
            return
        if rows.get("schema_version") != str(SCHEMA_VERSION):
            raise PeftbenchError(f"store {self.path} has schema version {rows.get('schema_version')}, this "
                                 f"peftbench reads version {SCHEMA_VERSION}")

    def transaction(self):
        return _Transaction(self.conn)

    def lock_for_writing(self) -> None:
        """Hold an exclusive lock for the study's duration: a second writer gets a clear error."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise PeftbenchError(f"store {self.path} is in use by another study (pid {holder}); wait for it "
                                 f"or use --db to pick another store") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        if self.conn is not None:
            self.conn.close()

    def discard_if_unused(self) -> None:
        """Close, and remove the store if this very call created it and no trial was ever written to it
        (a study that could not start leaves no file behind). Only the lock holder may remove it."""
        try:
            empty = self.conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0
        except sqlite3.Error:
            empty = False
        if not (self.created and self._lock_fd is not None and empty):
            self.close()
            return
        self.conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        if self._file_existed:  # the user's own empty file: give it back empty
            self.path.write_bytes(b"")
        else:
            self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".lock").unlink(missing_ok=True)
        self.close()  # releases the lock
        for d in self._made_dirs:  # innermost first
            try:
                d.rmdir()
            except OSError:
                break

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------
    def mark_running(self, spec_dict: dict[str, Any], trial_id: str) -> bool:
        """Mark a trial running. A finished record it replaces (a --force re-run) is copied to the history
        table in the same transaction; returns whether that happened."""
        m = spec_dict["method"]
        with self.transaction():
            archived = self.conn.execute(
                """INSERT INTO trial_history (trial_id, status, error, attempts, spec_json, record_json,
                                              started_at, finished_at, replaced_at)
                   SELECT trial_id, status, error, attempts, spec_json, record_json, started_at,
                          finished_at, ?
                   FROM trials
                   WHERE trial_id = ? AND status IN ('ok', 'pruned') AND record_json IS NOT NULL""",
                (time.time(), trial_id)).rowcount > 0
            self.conn.execute(
                """INSERT INTO trials (trial_id, study, method, family, seed, train_size, status, attempts,
                                       spec_json, started_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'running', 1, ?, ?)
                   ON CONFLICT(trial_id) DO UPDATE SET status='running', error=NULL, record_json=NULL,
                       attempts=attempts+1, started_at=excluded.started_at, finished_at=NULL""",
                (trial_id, spec_dict["study"], m["name"], m["family"], spec_dict["seed"],
                 spec_dict["train"]["train_size"], json.dumps(spec_dict, sort_keys=True), time.time()))
        return archived

    def finish(self, trial_id: str, status: str, record: dict[str, Any], error: str | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE trials SET status=?, error=?, record_json=?, finished_at=? WHERE trial_id=?",
                (status, error, json.dumps(record, default=json_default), time.time(), trial_id))

    # --- reading -------------------------------------------------------------------------------
    def statuses(self, trial_ids: Iterable[str]) -> dict[str, str]:
        ids = list(trial_ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT trial_id, status FROM trials WHERE trial_id IN ({','.join('?' * len(chunk))})"
            out.update(dict(self.conn.execute(q, chunk).fetchall()))
        return out

    def rows(self, study: str | None = None, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        q = "SELECT trial_id, study, method, family, seed, train_size, status, error, attempts, spec_json, " \
            "record_json, started_at, finished_at FROM trials"
        where, args = [], []
        if study:
            where.append("study = ?")
            args.append(study)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY started_at"
        cols = ["trial_id", "study", "method", "family", "seed", "train_size", "status", "error", "attempts",
                "spec_json", "record_json", "started_at", "finished_at"]
        return [dict(zip(cols, r)) for r in self.conn.execute(q, args).fetchall()]

    def records(self, study: str | None = None, include_failed: bool = False, roles: bool = True) -> pd.DataFrame:
        """One row per trial: the measured record flattened (provenance kept as nested dict). With `roles`,
        each task's role columns are filled from the fields that play them (tasks.reading_view); export reads
        the records as stored (roles=False).

        Each row carries its configuration (`configuration`, its key `config`, config/identity.py) and the
        method's own name in `method_name`; `method` is the configuration's label, the name plus what tells
        it apart from another configuration of that name in the same study and setup, so that nothing
        grouping by `method` pools two configurations as seeds. Tuning candidates keep their own names."""
        rows = self.rows(study, None if include_failed else ("ok",))
        out = []
        for r in rows:
            rec = json.loads(r["record_json"]) if r["record_json"] else {}
            spec = json.loads(r["spec_json"])
            base = {k: r[k] for k in ("trial_id", "study", "method", "family", "seed", "train_size", "status",
                                      "error", "attempts")}
            base["lora_r"] = spec["method"]["options"].get("r")
            base["lora_alpha"] = spec["method"]["options"].get("alpha")
            base["eval_size"] = spec.get("eval_size")
            base["started_at"] = r["started_at"]
            base["setup"] = setup_key(spec, rec)
            base["setup_label"] = setup_label(spec, rec)
            base["configuration"] = configuration(spec, rec)
            base["config"] = config_key(base["configuration"])
            base["method_name"] = r["method"]
            out.append({**rec, **base})
        frame = attach_side_by_side(self.conn, pd.DataFrame(out))  # the side-by-side pass's figures, if any
        if len(frame):
            candidate = frame["configuration"].map(lambda c: "tune_group" in c)
            frame = label_configurations(frame, only=~candidate)
        if not roles:
            return frame
        from peftbench.tasks import reading_view

        return reading_view(frame)

    def history(self, trial_id: str | None = None) -> list[dict[str, Any]]:
        """Records that a --force re-run replaced, oldest first."""
        q = "SELECT trial_id, status, error, attempts, spec_json, record_json, started_at, finished_at, " \
            "replaced_at FROM trial_history"
        args: list[Any] = []
        if trial_id:
            q += " WHERE trial_id = ?"
            args.append(trial_id)
        cols = ["trial_id", "status", "error", "attempts", "spec_json", "record_json", "started_at",
                "finished_at", "replaced_at"]
        return [dict(zip(cols, r)) for r in self.conn.execute(q + " ORDER BY replaced_at", args).fetchall()]

    def refuse_repeated_seeds(self, specs: Iterable[tuple[dict[str, Any], str]],
                              split_hash: str | None) -> None:
        """Raise before a trial runs whose (study, configuration, seed) a finished trial with another id
        already holds (e.g. the same study re-run with other latency settings): the two would
        otherwise be averaged as two seeds. A --force re-run of the same trial id is not a clash. Tuning
        candidates (spec `tune_group`) are chosen per seed later and are exempt."""
        seen: dict[tuple, str] = {}
        done = self.rows(statuses=("ok",))
        for spec, trial_id in specs:
            if spec.get("tune_group"):
                continue
            key = _seed_key(spec, {"provenance": {"data": {"split_hash": split_hash}}})
            if seen.setdefault(key, trial_id) != trial_id:
                raise PeftbenchError(f"the study lists {spec['method']['name']} seed {spec['seed']} twice "
                                     f"for the same setup (trials {seen[key]} and {trial_id})")
            for r in done:
                if r["trial_id"] != trial_id and _holds_seed(r, key):
                    raise PeftbenchError(_repeated_seed_message(spec, r))


def _holds_seed(row: dict[str, Any], key: tuple) -> bool:
    """Whether a stored (untuned, finished) trial is the same study, configuration and seed."""
    study, _, method, train_size, seed = key
    if (row["study"], row["method"], row["train_size"], row["seed"]) != (study, method, train_size, seed):
        return False
    spec = json.loads(row["spec_json"])
    record = json.loads(row["record_json"]) if row["record_json"] else {}
    if spec.get("tune_group") or record.get("tune_group"):
        return False
    return _seed_key(spec, record) == key


def _repeated_seed_message(spec: dict[str, Any], row: dict[str, Any]) -> str:
    differs = _spec_differences(spec, json.loads(row["spec_json"]))
    return (f"{spec['method']['name']} seed {spec['seed']} (train size {spec['train']['train_size']}) is "
            f"already in study {spec['study']!r} of this store for the same setup, as trial {row['trial_id']}"
            f"{' (it differs only in ' + differs + ')' if differs else ''}; a repeated seed is refused, not "
            f"counted twice: use other seeds, another --db, or the earlier options with --force")


def _seed_key(spec: dict[str, Any], record: dict[str, Any]) -> tuple:
    """(study, configuration key, method, train size, seed): a seed counts once per configuration."""
    return (spec["study"], config_key(configuration(spec, record)), spec["method"]["name"],
            spec["train"]["train_size"], spec["seed"])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _spec_differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    fa, fb = _flatten(a), _flatten(b)
    keys = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    return ", ".join(f"{k.split('.')[-1]} {fb.get(k)} there, {fa.get(k)} now" for k in keys[:3])


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def json_default(o: Any) -> Any:
    """json.dumps fallback for numpy scalars/arrays (records hold them); anything else as text."""
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
