"""The store's SQLite tables (schema version in store/db.py)."""

TRIALS_TABLE = """
CREATE TABLE IF NOT EXISTS trials (
    trial_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    method TEXT NOT NULL,
    family TEXT NOT NULL,
    seed INTEGER NOT NULL,
    train_size INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'cancelled', 'pruned')),
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    spec_json TEXT NOT NULL,
    record_json TEXT,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS trials_study ON trials (study, status);
"""
# A finished record that --force replaces is kept here, never lost.
HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS trial_history (
    trial_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    attempts INTEGER,
    spec_json TEXT NOT NULL,
    record_json TEXT,
    started_at REAL,
    finished_at REAL,
    replaced_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trial_history_id ON trial_history (trial_id);
"""
META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
SCHEMA = META_TABLE + TRIALS_TABLE + HISTORY_TABLE
