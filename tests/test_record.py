"""The declared trial record (record/), and stores written by earlier versions read back unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from peftbench.record.fields import GROUPS
from peftbench.record.schema import RECORD_VERSION, TrialRecord, UndeclaredField, checked, field_of
from peftbench.store.db import Store

DATA = Path(__file__).parent / "data"


def _v2_store(name: str, tmp_path: Path) -> Path:
    """A store written by the version before the typed record, rebuilt from its SQL dump (tests/data/*.sql:
    text under review, never a binary in the repository)."""
    db = tmp_path / f"{name}.db"
    conn = sqlite3.connect(db)
    try:
        conn.executescript((DATA / f"{name}.sql").read_text())
    finally:
        conn.close()
    return db


def test_every_declared_field_has_a_unit_a_split_and_a_meaning():
    names = [f.name for fields in GROUPS.values() for f in fields]
    assert len(names) == len(set(names)), "a field is declared twice"
    for fields in GROUPS.values():
        for f in fields:
            assert f.unit and f.split and f.meaning, f.name


def test_a_record_splits_into_its_groups_and_back():
    flat = {"trial_id": "abc", "accuracy": 0.8, "val_accuracy": 0.79, "perturbed_typo_accuracy": 0.7,
            "train_seconds": 12.0, "ttft_p50_ms": 30.0, "merged_latency_p50_ms": None, "tune_group": None}
    rec = TrialRecord.from_flat(flat)
    assert rec.performance.accuracy == 0.8 and rec.compute.train_seconds == 12.0
    assert rec.generalization.more == {"perturbed_typo_accuracy": 0.7}
    assert rec.decoder.more == {"ttft_p50_ms": 30.0}
    assert rec.to_flat() == flat  # None values that were present stay present; absent ones stay absent
    assert field_of("robustness_drop_word_swap")[0] == "generalization"


def test_an_undeclared_field_is_refused():
    with pytest.raises(UndeclaredField, match="accuracy_typo_thing"):
        checked({"trial_id": "abc", "accuracy_typo_thing": 1})


def _raw_records(db: Path) -> dict[str, dict]:
    conn = sqlite3.connect(db)
    try:
        return {tid: json.loads(text) for tid, text in
                conn.execute("SELECT trial_id, record_json FROM trials WHERE record_json IS NOT NULL")}
    finally:
        conn.close()


@pytest.mark.parametrize("fixture", ["store_v2_classify", "store_v2_generate"])
def test_a_store_of_the_previous_format_migrates_in_place_and_reads_every_figure_back(fixture, tmp_path):
    """Stores written by the version before the typed record (schema 2, record version 2) open, upgrade
    in one transaction, and give every figure back: a classifier's unchanged, a generate trial's under its
    own name (its accuracy/latency/throughput aliases were copies of exact match, TTFT and decode speed)."""
    db = _v2_store(fixture, tmp_path)
    before = _raw_records(db)
    assert before and all(r["record_version"] == 2 for r in before.values())
    with Store(db, create=False) as store:
        assert store.migrated_from == 2
        records = store.records(roles=False)
    after = _raw_records(db)
    assert set(after) == set(before)
    for tid, old in before.items():
        new = after[tid]
        assert new["record_version"] == RECORD_VERSION
        checked(new)  # every migrated field is declared
        for key, value in old.items():
            if key == "record_version":
                continue
            renamed = _own_name(old, key)
            if renamed != key:
                assert key not in new, key
            assert new[renamed] == value, key
    row = records.set_index("trial_id").loc[next(iter(before))]
    assert row["record_version"] == RECORD_VERSION
    # reopening does not migrate again
    with Store(db, create=False) as store:
        assert store.migrated_from is None


def _own_name(record: dict, key: str) -> str:
    """Where a version-2 figure lives in version 3: a generate trial's role copies under their own name."""
    if record.get("task") != "generate":
        return key
    own = {"accuracy": "exact_match", "throughput_per_s": "decode_tokens_per_s_batched", "latency": "ttft"}
    for prefix in ("", "val_", "merged_", "ood_"):
        for role, source in own.items():
            if key == f"{prefix}{role}" or (role == "latency" and key.startswith(f"{prefix}latency_")):
                return key.replace(role, source, 1)
    if key.startswith(("perturbed_", "clean_subset_")) and key.endswith("_accuracy"):
        return key[: -len("accuracy")] + "exact_match"
    return key


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    import peftbench.store.migrate as migrate

    db = _v2_store("store_v2_classify", tmp_path)
    before = db.read_bytes()

    def broken(record, roles_of):
        raise ValueError("injected")

    monkeypatch.setattr(migrate, "upgrade_record", broken)
    from peftbench.errors import PeftbenchError

    with pytest.raises(PeftbenchError, match="could not be upgraded.*it is unchanged"):
        Store(db, create=False)
    assert _raw_records(db) == _raw_records_from_bytes(before, tmp_path)


def _raw_records_from_bytes(data: bytes, tmp_path: Path) -> dict[str, dict]:
    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    return _raw_records(copy)


def test_peftbench_fields_lists_every_declared_field(monkeypatch, capsys):
    import sys

    from peftbench.cli.app import main

    monkeypatch.setattr(sys, "argv", ["peftbench", "fields"])
    monkeypatch.setenv("COLUMNS", "250")
    main()
    out = capsys.readouterr().out
    missing = [f.name for fields in GROUPS.values() for f in fields if f.name not in out]
    assert not missing, missing
