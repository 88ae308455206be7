"""One identity per configuration: a tuned and an untuned LoRA-r8, and two train sizes, are never seeds of
one row in any view (results / pb.summary, recommend with P(best) and the tied set, pareto, the report,
export, the Python API, MLflow's parameters); where configurations differ in a setup field (the train size
of a ranked study) the decision commands ask which setup, in one line.

The store is real: six tiny-BERT trials of a second or two (tests/conftest.py), one of them a tuning
search of two learning rates. A learning-rate default that changed between two seeds is checked on
hand-written records (no training needed to see how the store reads them).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import peftbench as pb
from peftbench.config.setup import SIZE_AXIS_STUDIES
from peftbench.config.spec import DataSpec, MethodSpec, TrainSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.stats.predictions import encode
from peftbench.store.db import Store
from tests.conftest import run_cli_main

TUNED = "LoRA-r8 (tuned)"


@pytest.fixture(scope="module")
def mixed_store(tiny_model, tiny_csv, tiny_ood_csv, tmp_path_factory) -> Path:
    """tradeoff: LoRA-r8 and BitFit at 200 and at 100 training rows, plus LoRA-r8 tuned (default rate and
    5x it, 1e-2: it learns here) at 200 rows."""
    from peftbench.execute.local import LocalExecutor
    from peftbench.methods import parse_method
    from peftbench.studies import runner, tuning

    data = DataSpec(source=tiny_csv, validation_size=40, test_size=80, ood_source=tiny_ood_csv, ood_size=60,
                    max_length=32, perturbation_size=30)
    train = TrainSpec(train_size=200, epochs=3, batch_size=16, latency_runs=5, throughput_batches=1)
    specs = [TrialSpec(study="tradeoff", method=parse_method(m), model=tiny_model, data=data, train=t)
             for t in (train, dataclasses.replace(train, train_size=100)) for m in ("LoRA-r8", "BitFit")]
    db = tmp_path_factory.mktemp("identity") / "mixed.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        assert runner.run_trials(specs, db).ok == 4
        cands, executor, _ = tuning.prepare(specs[:1], db, LocalExecutor(workers=1), (1.0, 5.0))
        summary = runner.run_trials(cands, db, executor)
    assert summary.ok + summary.pruned == 2 and summary.failed == 0
    return db


def _records(db: Path) -> pd.DataFrame:
    with Store(db, create=False) as store:
        return store.records()


def _setup_of(records: pd.DataFrame, train_size: int) -> str:
    keys = set(records.loc[records["train_size"] == train_size, "setup"])
    assert len(keys) == 1, keys
    return keys.pop()


def test_results_and_summary_keep_every_configuration_apart(mixed_store):
    summary = pb.summary(mixed_store)
    rows = {(r["method"], int(r["train_size"])): r for r in summary.to_dict("records")}
    assert set(rows) == {("LoRA-r8", 200), (TUNED, 200), ("BitFit", 200), ("LoRA-r8", 100), ("BitFit", 100)}
    assert all(r["seeds"] == 1 for r in rows.values())  # one seed each: nothing averaged with anything
    assert summary["config"].is_unique
    # each row's figure is its own trial's, not a mean of tuned and untuned
    records = pb.results(mixed_store)
    lora200 = records[(records["method"] == "LoRA-r8") & (records["train_size"] == 200)]
    plain = lora200[lora200["tune_group"].isna()]
    assert len(plain) == 1 and lora200["config"].is_unique  # the search's default-rate candidate is apart
    # (train seconds and latency differ between any two trials: a mean of two would match neither)
    for col in ("val_accuracy", "train_seconds", "latency_p50_ms"):
        assert rows[("LoRA-r8", 200)][f"{col}_mean"] == pytest.approx(float(plain[col].iloc[0]))
    cands = records[records["tune_group"] == "LoRA-r8"]
    from peftbench.stats.summary import reportable

    picked = reportable(records).query("method == @TUNED")
    assert len(picked) == 1 and picked["method_name"].iloc[0] == "LoRA-r8"
    chosen = cands[cands["method"] == picked["tuned_method"].iloc[0]]
    for col in ("val_accuracy", "train_seconds", "latency_p50_ms"):
        assert rows[(TUNED, 200)][f"{col}_mean"] == pytest.approx(float(chosen[col].iloc[0]))
    assert rows[(TUNED, 200)]["train_seconds_mean"] != rows[("LoRA-r8", 200)]["train_seconds_mean"]
    assert set(records["method_name"]) == {"LoRA-r8", "BitFit"} | set(cands["method"])
    out = " ".join(run_cli_main("results", "--db", mixed_store).stdout.split())
    assert out.count("peftbench: tradeoff") == 2  # one table per setup: train 200 and train 100
    assert "train 200" in out and "train 100" in out and "LoRA-r8 (tuned, lr" in out


def test_recommend_asks_which_setup_then_ranks_tuned_and_untuned_apart(mixed_store):
    from peftbench.analysis.recommend import Limits, prepare, rank
    from peftbench.analysis.scenarios import scenario_weights

    asked = run_cli_main("recommend", "--db", mixed_store, check=False)
    assert asked.returncode == 2 and asked.stdout == ""
    line = asked.stderr.strip()
    assert "\n" not in line and "2 setups" in line and "train 100" in line and "train 200" in line
    records = _records(mixed_store)
    with pytest.raises(PeftbenchError, match="holds 2 setups"):
        prepare(records)
    setup = _setup_of(records, 200)
    prep = prepare(records, setup=setup, include_collapsed=True, resamples=200)
    rec = rank(prep, scenario_weights("balanced"), Limits())
    assert set(rec.ranking.index) == {"LoRA-r8", TUNED, "BitFit"}
    assert rec.ranking["p_best"].sum() == pytest.approx(1.0)
    assert set(rec.tied) <= set(rec.ranking.index) and rec.top in rec.tied
    out = run_cli_main("recommend", "--db", mixed_store, "--setup", setup, "--include-collapsed",
                       "--scenario", "balanced").stdout
    assert TUNED in out and "LoRA-r8 " in out.replace(TUNED, "")


def test_pareto_and_report_show_both(mixed_store, tmp_path):
    setup = _setup_of(_records(mixed_store), 200)
    out = run_cli_main("pareto", "--db", mixed_store, "--setup", setup, "--include-collapsed",
                       "--objectives", "accuracy:max,trainable_params:min").stdout
    names = {line.strip("│ ").split("│")[0].strip() for line in out.splitlines() if "│" in line}
    assert {"LoRA-r8", TUNED, "BitFit"} <= names
    html_path = tmp_path / "report.html"
    run_cli_main("report", "--db", mixed_store, "-o", html_path, "--setup", setup, "--include-collapsed")
    html = html_path.read_text()
    assert TUNED in html and "LoRA-r8" in html.replace(TUNED, "")


def test_export_carries_each_configuration(mixed_store, tmp_path):
    run_cli_main("export", "--db", mixed_store, "--format", "json", "--include-failed",
                 "-o", tmp_path / "r.json")
    recs = json.loads((tmp_path / "r.json").read_text())
    run_cli_main("export", "--db", mixed_store, "--format", "csv", "--include-failed",
                 "-o", tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for table in (recs, rows):
        assert len(table) == 6 and len({r["config"] for r in table}) == 6  # six trials (one pruned or not)
        lora = [r for r in table if r["method_name"] == "LoRA-r8"]
        # untuned at 200 and 100 rows, and the search's default-rate candidate: three identities
        assert len(lora) == 3 and len({r["config"] for r in lora}) == 3
    # the per-configuration table a user copies into a paper: one row per configuration, never pooled
    summary = json.loads(run_cli_main("export", "--db", mixed_store, "--summary").stdout)
    rows = {(r["method"], r["train_size"]): r for r in summary}
    assert {("LoRA-r8", 200), (TUNED, 200), ("LoRA-r8", 100)} <= set(rows)
    assert len(summary) == 5 and all(r["seeds"] == 1 for r in summary)
    assert len({r["config"] for r in summary}) == 5


def test_tracking_parameters_name_the_configuration(mixed_store):
    from peftbench.store.tracking import run_params

    with Store(mixed_store, create=False) as store:
        rows = store.rows(statuses=("ok",))
    params = []
    for r in rows:
        spec = TrialSpec.from_dict(json.loads(r["spec_json"]))
        params.append(run_params(spec, json.loads(r["record_json"])))
    assert len({p["config"] for p in params}) == len(params)
    assert all("learning_rate" in p and "train_size" in p for p in params)


def test_size_axis_study_is_the_data_efficiency_study():
    from peftbench.analysis.curves import DATA_EFFICIENCY_STUDY

    assert DATA_EFFICIENCY_STUDY in SIZE_AXIS_STUDIES


def test_device_precision_revision_and_ranked_train_size_are_setups():
    from peftbench.config.setup import setup_key, setup_label

    def key(study="tradeoff", record=None, **train):
        spec = TrialSpec(study=study, method=MethodSpec("Full", "full"), model="tiny",
                         train=TrainSpec(**{"train_size": 64, "device": "cpu", **train})).to_dict()
        return setup_key(spec, record)

    base = key()
    assert base != key(device="cuda") and base != key(record={"device": "cuda:0"})
    assert key(record={"device": "cpu"}) == base  # the device it ran on, as the record says
    assert base != key(bf16=True) and base != key(load_in_4bit=True) and base != key(gradient_checkpointing=True)
    assert base != key(record={"device": "cpu", "provenance": {"model_revision": "abc123"}})
    assert base != key(train_size=32)  # a ranked study at two train sizes: two setups
    de = "data-efficiency"
    assert key(study=de) == key(study=de, train_size=32)  # the curve's axis: one setup
    spec = TrialSpec(study="tradeoff", method=MethodSpec("Full", "full"), model="tiny",
                     train=TrainSpec(train_size=64, device="cuda", bf16=True)).to_dict()
    assert {"train 64", "cuda", "bf16"} <= set(setup_label(spec).split(" · "))


# --- a learning-rate default that changed between seeds (hand-written records) ----------------------

def _spec(seed=0, lr=2e-4, head_lr=None, latency_runs=5, train_size=64, study="tradeoff"):
    return TrialSpec(study=study, method=MethodSpec("LoRA-r8", "lora", {"r": 8}, lr, head_lr),
                     model="tiny", data=DataSpec(source="reviews.csv", test_size=80),
                     train=TrainSpec(train_size=train_size, epochs=1, batch_size=16,
                                     latency_runs=latency_runs),
                     seed=seed)


def _store(store: Store, spec: TrialSpec, accuracy: float) -> None:
    y = np.array([0, 1] * 40)
    p = y.copy()
    p[: round((1 - accuracy) * 80)] ^= 1
    rec = {"trial_id": spec.trial_id, "study": spec.study, "method": spec.method.name, "seed": spec.seed,
           "train_size": spec.train.train_size, "learning_rate": spec.method.learning_rate,
           "head_learning_rate": spec.method.head_learning_rate, "device": "cpu", "status": "ok",
           "accuracy": float((p == y).mean()), "test_labels": encode(y), "test_predictions": encode(p),
           "val_accuracy": accuracy, "collapsed": False,
           "provenance": {"data": {"split_hash": "aaaa1111bbbb2222", "dataset": "reviews.csv"}}}
    store.mark_running(spec.to_dict(), spec.trial_id)
    store.finish(spec.trial_id, "ok", rec)


def test_seeds_before_and_after_a_default_changed_are_two_configurations(tmp_path):
    from peftbench.report.tables import summary_frame

    with Store(tmp_path / "lr.db") as store:
        _store(store, _spec(seed=0, lr=2e-4), 0.9)  # run when the family's default was 2e-4
        _store(store, _spec(seed=1, lr=5e-4), 0.6)  # the same name, after the default became 5e-4
        _store(store, _spec(seed=2, lr=5e-4, head_lr=1e-3), 0.7)  # and with the head at its own rate
        records = store.records()
        agg = summary_frame(records)
        assert sorted(agg["method"]) == ["LoRA-r8 · lr 0.0002 · head lr default (not recorded)",
                                         "LoRA-r8 · lr 0.0005 · head lr 0.001",
                                         "LoRA-r8 · lr 0.0005 · head lr default (not recorded)"]
        assert (agg["seeds"] == 1).all() and sorted(agg["accuracy_mean"].round(2)) == [0.6, 0.7, 0.9]
        assert set(records["method_name"]) == {"LoRA-r8"}
        # a repeated seed of one configuration is still refused (here: timed with other latency runs) ...
        again = _spec(seed=1, lr=5e-4, latency_runs=9)
        with pytest.raises(PeftbenchError, match="a repeated seed is refused"):
            store.refuse_repeated_seeds([(again.to_dict(), again.trial_id)], "aaaa1111bbbb2222")
        # ... while the same seed of another configuration (another rate, another train size) is not one
        for other in (_spec(seed=1, lr=1e-3), _spec(seed=1, lr=5e-4, train_size=32)):
            store.refuse_repeated_seeds([(other.to_dict(), other.trial_id)], "aaaa1111bbbb2222")


def test_data_efficiency_curves_keep_one_label_across_sizes_and_match_by_configuration(tmp_path):
    from peftbench.analysis.curves import (
        DATA_EFFICIENCY_STUDY,
        data_efficiency_summary,
        matched_curves,
        study_records,
    )

    with Store(tmp_path / "de.db") as store:
        for lr, acc in ((2e-4, 0.9), (5e-4, 0.6)):
            for size in (32, 64):
                _store(store, _spec(lr=lr, train_size=size, study=DATA_EFFICIENCY_STUDY), acc + size / 1000)
        _store(store, _spec(lr=5e-4), 0.7)  # the ranked study holds one LoRA-r8: the 5e-4 one
        records = store.records()
    curve_rows = study_records(records, DATA_EFFICIENCY_STUDY)
    assert sorted(set(curve_rows["method"])) == ["LoRA-r8 · lr 0.0002", "LoRA-r8 · lr 0.0005"]  # no "n=" part
    summary = data_efficiency_summary(curve_rows)
    assert len(summary) == 2
    ranked = records[records["study"] == "tradeoff"]
    assert list(ranked["method"]) == ["LoRA-r8"]
    matched = matched_curves(summary, curve_rows, ranked)
    assert list(matched.index) == ["LoRA-r8"]
    assert matched.loc["LoRA-r8", "val_accuracy_at_smallest_size"] == pytest.approx(0.632)  # its own curve
    from peftbench.config.identity import configuration, method_key, tuned_configuration

    plain = configuration(_spec(lr=5e-4).to_dict())
    tuned = tuned_configuration({**plain, "tune_group": "LoRA-r8"}, "3 learning rates")
    assert method_key(tuned) != method_key(plain)  # a tuned LoRA-r8 never takes the untuned curve


def test_a_hand_built_frame_pooling_two_configurations_is_refused():
    from peftbench.analysis.selection import select_records

    frame = pd.DataFrame([{"study": "tradeoff", "method": "LoRA-r8", "train_size": 64, "seed": s,
                           "config": c, "setup": "a", "status": "ok"} for s, c in ((0, "x"), (1, "y"))])
    with pytest.raises(PeftbenchError, match="one name holds several configurations"):
        select_records(frame)
