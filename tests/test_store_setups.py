"""Setups never mixed, repeated seeds refused, --force keeping history, schema-1 stores upgraded, export."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from peftbench.config.setup import setup_key, setup_label
from peftbench.config.spec import DataSpec, MethodSpec, TrainSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.stats.predictions import encode
from peftbench.store.db import Store


def _spec(
    method="Full", seed=0, source="reviews.csv", epochs=1, latency_runs=5, test_size=80, study="tradeoff"
):
    return TrialSpec(
        study=study,
        method=MethodSpec(method, "full" if method == "Full" else "lora"),
        model="tiny",
        data=DataSpec(source=source, test_size=test_size),
        train=TrainSpec(train_size=64, epochs=epochs, batch_size=16, latency_runs=latency_runs),
        seed=seed,
    )


def _record(spec: TrialSpec, split_hash="aaaa1111bbbb2222", accuracy=0.8, dataset="reviews.csv (600 rows)"):
    y = np.array([0, 1] * 40)
    p = y.copy()
    p[: round((1 - accuracy) * 80)] ^= 1
    return {
        "trial_id": spec.trial_id,
        "study": spec.study,
        "method": spec.method.name,
        "seed": spec.seed,
        "train_size": spec.train.train_size,
        "accuracy": float((p == y).mean()),
        "status": "ok",
        "test_labels": encode(y),
        "test_predictions": encode(p),
        "perturbations_skipped": {"case": "leaves the token ids unchanged (uncased tokenizer)"},
        "collapsed": False,
        "provenance": {"data": {"split_hash": split_hash, "dataset": dataset}},
    }


def _store_trial(store: Store, spec: TrialSpec, **record_kw) -> None:
    store.mark_running(spec.to_dict(), spec.trial_id)
    store.finish(spec.trial_id, "ok", _record(spec, **record_kw))


def test_setup_key_separates_what_must_not_be_averaged():
    s = _spec().to_dict()
    rec = _record(_spec())
    assert setup_key(s, rec) == setup_key(_spec(method="LoRA-r8", seed=3).to_dict(), rec)  # method/seed: same
    assert setup_key(s, rec) == setup_key(_spec(latency_runs=9).to_dict(), rec)  # how latency is timed: same
    assert setup_key(s, rec) != setup_key(s, _record(_spec(), split_hash="cccc"))  # other data split
    assert setup_key(s, rec) != setup_key(_spec(epochs=3).to_dict(), rec)
    assert setup_key(s, rec) != setup_key(_spec(source="other.csv").to_dict(), rec)
    assert len(setup_key(s, rec)) == 8
    label = setup_label(s, rec)
    for part in ("tiny", "reviews.csv (600 rows)", "split aaaa1111", "max_len 128", "1 epoch", "batch 16"):
        assert part in label


def test_a_store_holding_two_datasets_shows_them_apart(tmp_path):
    from peftbench.cli.console import console
    from peftbench.cli.results_view import print_results

    db = tmp_path / "mixed.db"
    with Store(db) as store:
        for seed in (0, 1):
            _store_trial(store, _spec(seed=seed), accuracy=0.9)
            _store_trial(
                store,
                _spec(seed=seed, source="other.csv"),
                split_hash="cccc3333dddd4444",
                accuracy=0.6,
                dataset="other.csv (300 rows)",
            )
        records = store.records()
    assert records["setup"].nunique() == 2 and set(records.columns) >= {"setup", "setup_label"}
    from peftbench.report.tables import summary_frame

    agg = summary_frame(records)
    assert len(agg) == 2 and sorted(agg["accuracy_mean"].round(3)) == [0.6, 0.9]  # never averaged to 0.75
    with console.capture() as captured:
        print_results(db, None)
    out = " ".join(captured.get().split())
    assert "reviews.csv (600 rows)" in out and "other.csv (300 rows)" in out
    assert out.count("peftbench: tradeoff") == 2


def test_a_repeated_seed_is_refused_not_doubled(tmp_path):
    with Store(tmp_path / "s.db") as store:
        first = _spec(latency_runs=5)
        _store_trial(store, first)
        again = _spec(latency_runs=9)  # same study, setup, method and seed: another trial id
        assert again.trial_id != first.trial_id
        with pytest.raises(
            PeftbenchError, match="differs only in latency_runs 5 there, 9 now.*a repeated seed is refused"
        ):
            store.refuse_repeated_seeds([(again.to_dict(), again.trial_id)], "aaaa1111bbbb2222")
        # not a clash: the same trial (a --force re-run), another seed, another data split, a tuning candidate
        store.refuse_repeated_seeds([(first.to_dict(), first.trial_id)], "aaaa1111bbbb2222")
        store.refuse_repeated_seeds([(_spec(seed=1, latency_runs=9).to_dict(), "x")], "aaaa1111bbbb2222")
        store.refuse_repeated_seeds([(again.to_dict(), again.trial_id)], "another-split")
        store.refuse_repeated_seeds(
            [({**again.to_dict(), "tune_group": "Full"}, again.trial_id)], "aaaa1111bbbb2222"
        )
        with pytest.raises(PeftbenchError, match="twice for the same setup"):
            store.refuse_repeated_seeds(
                [(_spec(seed=4).to_dict(), "a"), (_spec(seed=4, latency_runs=7).to_dict(), "b")],
                "aaaa1111bbbb2222",
            )


class _FakeExecutor:
    """Stores a record per spec without training: the runner's bookkeeping is what is tested."""

    def run(self, specs, data, on_event, on_start):
        from peftbench.execute.base import TrialOutcome

        for spec in specs:
            on_start(spec)
            yield TrialOutcome(spec, "ok", {**_record(spec), "provenance": {"data": data.provenance}})


def test_runner_refuses_a_repeated_seed_and_force_keeps_the_earlier_record(
    tmp_path, tiny_model, tiny_csv, capsys
):
    from peftbench.studies.runner import run_trials

    db = tmp_path / "run.db"
    data = DataSpec(source=tiny_csv, validation_size=40, test_size=80, ood_source=None, max_length=32)

    def spec(latency_runs):
        return TrialSpec(
            study="tradeoff",
            method=MethodSpec("Full", "full"),
            model=tiny_model,
            data=data,
            train=TrainSpec(train_size=64, epochs=1, batch_size=16, latency_runs=latency_runs),
        )

    run_trials([spec(5)], db, _FakeExecutor())
    with pytest.raises(PeftbenchError, match="repeated seed is refused"):
        run_trials([spec(6)], db, _FakeExecutor())
    with Store(db) as store:
        assert len(store.rows()) == 1  # the refused trial never started
    run_trials([spec(5)], db, _FakeExecutor(), force=True)
    assert "earlier records are kept" in capsys.readouterr().err
    with Store(db) as store:
        history = store.history(spec(5).trial_id)
        assert len(history) == 1 and history[0]["status"] == "ok" and json.loads(history[0]["record_json"])
        assert len(store.rows()) == 1


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (trial_id TEXT PRIMARY KEY, study TEXT NOT NULL, method TEXT NOT NULL,
    family TEXT NOT NULL, seed INTEGER NOT NULL, train_size INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'cancelled')), error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, spec_json TEXT NOT NULL, record_json TEXT, started_at REAL,
    finished_at REAL);
CREATE INDEX trials_study ON trials (study, status);
INSERT INTO meta VALUES ('app', 'peftbench'), ('schema_version', '1');
"""


def _schema_1_store(path, version="1"):
    spec = _spec()
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1.replace("'schema_version', '1'", f"'schema_version', '{version}'"))
        conn.execute(
            "INSERT INTO trials VALUES (?, 'tradeoff', 'Full', 'full', 0, 64, 'ok', NULL, 1, ?, ?, 1.0, 2.0)",
            (spec.trial_id, json.dumps(spec.to_dict()), json.dumps(_record(spec))),
        )
    conn.close()
    return spec


def test_a_schema_1_store_is_upgraded_in_place(tmp_path):
    db = tmp_path / "v1.db"
    spec = _schema_1_store(db)
    with Store(db, create=False) as store:
        assert store.migrated_from == 1
        assert store.records()["accuracy"].tolist() == [pytest.approx(0.8)]  # every trial kept
        # schema 1 -> 3 in one step
        assert store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("3",)
        pruned = _spec(method="LoRA-r8")
        store.mark_running(pruned.to_dict(), pruned.trial_id)
        store.finish(pruned.trial_id, "pruned", {"val_accuracy": 0.6})  # the widened CHECK
        assert store.history(spec.trial_id) == []
    with Store(db, create=False) as store:
        assert store.migrated_from is None  # once


def test_a_store_from_a_newer_peftbench_is_refused_clearly(tmp_path):
    db = tmp_path / "v9.db"
    _schema_1_store(db, version="9")
    before = db.read_bytes()
    with pytest.raises(PeftbenchError, match="schema version 9, this peftbench reads version 3"):
        Store(db, create=False)
    assert db.read_bytes() == before


def test_export_keeps_every_field_and_handles_dicts(tmp_path):
    from peftbench.store.export import export_records

    with Store(tmp_path / "e.db") as store:
        _store_trial(store, _spec())
        _store_trial(store, _spec(seed=1))
        store.conn.execute(
            "UPDATE trials SET record_json = json_remove(record_json, '$.collapsed') WHERE seed = 1"
        )
        records = store.records()
    out = tmp_path / "r.csv"
    export_records(records, "csv", out)
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert back.loc[0, "test_labels"] == encode(np.array([0, 1] * 40))  # "0101…" stays text
    assert json.loads(back.loc[0, "perturbations_skipped"])["case"].startswith("leaves the token ids")
    export_records(records, "parquet", tmp_path / "r.parquet")  # a flag some records lack does not break it
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == 2
    export_records(records, "json", tmp_path / "r.json")
    rows = json.loads((tmp_path / "r.json").read_text())
    assert rows[0]["perturbations_skipped"]["case"] and rows[0]["test_predictions"] and rows[0]["setup"]
