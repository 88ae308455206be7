"""--tune: candidates per learning rate, pruned by Optuna's successive halving on validation, chosen on
validation only; stored, resumable, and refused with one clear line when asked wrongly."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from peftbench.config.spec import DataSpec, TrainSpec, TrialSpec
from peftbench.methods import parse_method

# A good learning rate for full fine-tuning of the tiny BERT (30 x Full's default: it has learnt the task by
# step 30) and an absurd one (it never leaves chance).
GOOD, ABSURD = 30.0, 1e5
TEST_FIELDS = ("accuracy", "f1", "test_size", "test_predictions", "test_labels", "ood_accuracy",
               "latency_p50_ms", "throughput_per_s", "robustness_drop")


@pytest.fixture(scope="module")
def base_specs(tiny_model, tiny_csv, tiny_ood_csv) -> list[TrialSpec]:
    data = DataSpec(source=tiny_csv, validation_size=40, test_size=80, ood_source=tiny_ood_csv, ood_size=60,
                    max_length=32, perturbation_size=30)
    # 25 steps an epoch, 100 in all: the first rung is at step 33, when the good rate has learnt the task.
    train = TrainSpec(train_size=400, epochs=4, batch_size=16, latency_runs=5, throughput_batches=1)
    return [TrialSpec(study="tune-test", method=parse_method("Full"), model=tiny_model, data=data,
                      train=train)]


def _tuned_run(specs: list[TrialSpec], db: Path, poison_test: bool = False, monkeypatch=None):
    from peftbench.execute.local import LocalExecutor
    from peftbench.store.db import Store
    from peftbench.studies import runner, tuning

    if poison_test:  # every test label flipped: a choice that read test would change
        from peftbench.data import prepared

        real = prepared.prepare_data

        def poisoned(*args, **kwargs):
            data = real(*args, **kwargs)
            data.test.labels = (1 - data.test.labels).astype(data.test.labels.dtype)
            return data

        monkeypatch.setattr(prepared, "prepare_data", poisoned)  # what the classify task prepares with
    cands, executor, budget = tuning.prepare(specs, db, LocalExecutor(workers=1), (GOOD, ABSURD))
    summary = runner.run_trials(cands, db, executor)
    with Store(db, create=False) as store:
        records = store.records(include_failed=True)
    return cands, summary, budget, records


@pytest.fixture(scope="module")
def clean(base_specs, tmp_path_factory):
    db = tmp_path_factory.mktemp("tune") / "store.db"
    return (db, *_tuned_run(base_specs, db))


def test_candidate_ids_are_stable_and_untuned_ids_unchanged(base_specs):
    from peftbench.studies.tuning import candidate_specs

    spec = base_specs[0]
    assert "tune_group" not in spec.to_dict() and "tune" not in spec.to_dict()
    a = candidate_specs(base_specs, journal=Path("/a/j"))
    b = candidate_specs(base_specs, journal=None)  # where a candidate reports is not what it is
    assert [c.trial_id for c in a] == [c.trial_id for c in b]
    assert len({c.trial_id for c in a} | {spec.trial_id}) == len(a) + 1
    assert a[0].method.name == "Full"  # the default first
    assert a[0].method.learning_rate == spec.method.learning_rate
    assert [c.tune_group for c in a] == ["Full"] * 3
    back = TrialSpec.from_dict(a[1].to_dict())
    assert back == a[1] and back.tune == a[1].tune


def test_round_robin_order_and_same_budget_for_every_method(base_specs):
    from peftbench.studies.tuning import candidate_specs

    specs = [dataclasses.replace(base_specs[0], method=parse_method(m))
             for m in ("Full", "BitFit", "LoRA-r8")]
    cands = candidate_specs(specs, journal=Path("j"))
    assert [c.tune_group for c in cands[:3]] == ["Full", "BitFit", "LoRA-r8"]
    assert all(":lr=" not in c.method.name for c in cands[:3])
    assert all(":lr=" in c.method.name for c in cands[3:])
    assert len({c.tune.budget for c in cands}) == 1 and "successive halving at 1/3" in cands[0].tune.budget


def test_tuned_run_stores_every_candidate_and_prunes_the_absurd_rate(clean):
    db, cands, summary, budget, records = clean
    assert "successive halving at 1/3 of the steps, reduction factor 3, validation subset 40 rows" in budget
    assert summary.ok == 1 and summary.pruned == 1 and summary.failed == 0
    by_method = {r["method"]: r for r in records.to_dict("records")}
    good, bad = by_method[cands[0].method.name], by_method[cands[1].method.name]
    assert good["status"] == "ok" and bad["status"] == "pruned"
    for r in (good, bad):
        assert r["tune_group"] == "Full" and "successive halving" in r["tune_budget"]
        assert 0 <= r["val_accuracy"] <= 1 and r["val_predictions"]
    assert good["val_accuracy"] > bad["val_accuracy"]
    # pruned at the first rung: a third of the steps, and not one test figure
    assert bad["tune_pruned_at_step"] == 33 and bad["train_steps"] == 33
    assert list(bad["tune_rung_scores"]) == ["33"]
    assert all(bad.get(k) is None or bad.get(k) != bad.get(k) for k in TEST_FIELDS)
    assert good["accuracy"] > 0.5 and good["test_predictions"]
    assert list(good["tune_rung_scores"]) == ["33", "100"]
    assert good["tune_rung_scores"]["100"] == good["val_accuracy"]
    assert good["train_steps"] == 100 and good["tune_rung_scores"]["33"] > bad["tune_rung_scores"]["33"]


def test_optuna_journal_matches_the_store(clean):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from peftbench.studies.tuning import journal_path

    db, cands, *_ = clean
    storage = JournalStorage(JournalFileBackend(str(journal_path(db))))
    study = optuna.load_study(study_name=cands[0].tune.study_name, storage=storage)
    states = {t.user_attrs["peftbench_trial_id"]: t.state for t in study.trials}
    assert states == {cands[0].trial_id: optuna.trial.TrialState.COMPLETE,
                      cands[1].trial_id: optuna.trial.TrialState.PRUNED}


def test_tuning_table_names_the_choice(clean):
    from peftbench.studies.tuning import candidates_frame, tuning_table

    db, cands, _s, _b, records = clean
    frame = candidates_frame(records)
    assert frame.loc[frame["chosen"], "method"].tolist() == [cands[0].method.name]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(tuning_table(records))
    text = console.export_text()
    assert "pruned" in text and "✓" in text and cands[1].method.name in text


def test_choice_reads_validation_only(clean, base_specs, tmp_path, monkeypatch):
    """A poisoned test split (every label flipped) changes the test figures and nothing the search did."""
    from peftbench.studies.tuning import candidates_frame

    _db, _c, _s, _b, records = clean
    _c2, _s2, _b2, poisoned = _tuned_run(base_specs, tmp_path / "poisoned.db", poison_test=True,
                                         monkeypatch=monkeypatch)
    a, b = candidates_frame(records).set_index("method"), candidates_frame(poisoned).set_index("method")
    assert a["chosen"].to_dict() == b["chosen"].to_dict()
    assert a["status"].to_dict() == b["status"].to_dict()
    assert a["val_accuracy"].to_dict() == b["val_accuracy"].to_dict()
    assert a["tune_rung_scores"].to_dict() == b["tune_rung_scores"].to_dict()
    chosen = a.index[a["chosen"]][0]
    assert a.loc[chosen, "accuracy"] == pytest.approx(1 - b.loc[chosen, "accuracy"])  # poison reached test


def test_completed_candidate_matches_an_untuned_trial(clean, base_specs):
    """Scoring validation mid-training leaves training as it was: the chosen candidate is the same trial
    an untuned run of that learning rate would have been."""
    from peftbench.data.prepared import prepare_data
    from peftbench.trial.run import run_trial

    _db, cands, _s, _b, records = clean
    untuned = dataclasses.replace(base_specs[0], method=cands[0].method)
    rec = run_trial(untuned, prepare_data(untuned.data, untuned.model, untuned.train.train_size))
    good = records.set_index("method").loc[cands[0].method.name]
    assert rec["final_train_loss"] == good["final_train_loss"]
    assert rec["val_predictions"] == good["val_predictions"] and rec["val_loss"] == good["val_loss"]


def test_resume_skips_finished_and_pruned_candidates(clean):
    from peftbench.execute.local import LocalExecutor
    from peftbench.studies import runner, tuning

    db, cands, *_ = clean
    with sqlite3.connect(db) as conn:
        before = dict(conn.execute("SELECT trial_id, finished_at FROM trials").fetchall())
    specs = [dataclasses.replace(c, method=dataclasses.replace(c.method), tune=None, tune_group=None)
             for c in cands[:1]]
    specs = [dataclasses.replace(specs[0], method=parse_method("Full"))]
    again, executor, _ = tuning.prepare(specs, db, LocalExecutor(workers=1), (GOOD, ABSURD))
    assert [c.trial_id for c in again] == [c.trial_id for c in cands]
    summary = runner.run_trials(again, db, executor)
    assert summary.skipped == 2 and summary.ok == summary.pruned == 0
    with sqlite3.connect(db) as conn:
        after = dict(conn.execute("SELECT trial_id, finished_at FROM trials").fetchall())
    assert after == before


def test_ray_backend_runs_every_candidate_without_pruning(base_specs, tmp_path):
    from peftbench.studies import tuning

    class NotLocal:  # stands for the Ray executor: its workers cannot reach the journal file
        def run(self, *a):
            raise AssertionError("not run here")

    cands, executor, line = tuning.prepare(base_specs, tmp_path / "s.db", NotLocal(), None)
    assert isinstance(executor, NotLocal) and all(c.tune.storage is None for c in cands)
    assert "cannot prune" in line and "no pruning" in cands[0].tune.budget
    assert not (tmp_path / "s.db.optuna-journal").exists()


@pytest.mark.parametrize("args,phrase", [
    (["--tune", "--tune-lr-factors", ""], "--tune-lr-factors names no factor"),
    (["--tune", "--tune-lr-factors", "1,zero"], "must be numbers"),
    (["--tune", "--tune-lr-factors", "1,-3"], "must be positive"),
    (["--tune", "--tune-lr-factors", "1,3,1"], "lists a factor twice"),
    (["--tune-lr-factors", "1,3"], "--tune-lr-factors needs --tune"),
    (["--tune", "--lr", "1e-3"], "--tune searches the learning rate itself"),
    (["--tune", "--methods", "BitFit:lr=1e-2"], "--tune searches the learning rate itself"),
    (["--tune", "--tune-grid", "1,3"], "No such option: --tune-grid"),
])
def test_bad_tune_input_is_one_line_and_exit_2(args, phrase, tiny_model, tiny_csv, tmp_path, monkeypatch,
                                               capsys):
    from peftbench.cli.app import main
    from peftbench.execute.local import LocalExecutor

    def started(*a, **k):
        raise AssertionError("the study started trials: this input was not rejected")

    monkeypatch.setattr(LocalExecutor, "run", started)
    db = tmp_path / "new" / "store.db"
    argv = ["peftbench", "run", "--model", tiny_model, "--dataset", tiny_csv, "--no-ood",
            "--train-size", "32", "--batch-size", "16", "--epochs", "1", "--db", str(db)]
    if "--methods" not in args:
        argv += ["--methods", "BitFit"]
    monkeypatch.setattr(sys, "argv", [*argv, *args])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exited.value.code == 2, err
    assert len(lines) == 1 and phrase in lines[0] and "Traceback" not in err, err
    assert not db.parent.exists()


def test_cli_tune_prints_the_budget_and_the_tuning_table(tiny_model, tiny_csv, tiny_ood_csv, tmp_path):
    from conftest import run_cli_main

    db = tmp_path / "cli.db"
    args = ["run", "--tune", "--tune-lr-factors", "1,1e4", "--methods", "BitFit", "--model", tiny_model,
            "--dataset", tiny_csv, "--ood-dataset", tiny_ood_csv, "--train-size", "96", "--epochs", "1",
            "--batch-size", "16", "--max-length", "32", "--preset", "quick", "--validation-size", "40",
            "--test-size", "80", "--db", str(db)]
    proc = run_cli_main(*args, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "tuning: 2 learning rates per method, successive halving at 1/3 of the steps" in proc.stderr
    assert "tuning: candidates and the choice" in proc.stdout and "BitFit:lr=30" in proc.stdout
    rows = sqlite3.connect(db).execute("SELECT method, status, record_json FROM trials").fetchall()
    assert {m for m, _s, _r in rows} == {"BitFit", "BitFit:lr=30"}
    assert all(json.loads(r)["tune_group"] == "BitFit" for _m, _s, r in rows)
    assert np.all([s in ("ok", "pruned") for _m, s, _r in rows])


def test_config_file_tune_keys(tmp_path):
    from peftbench.config.file import load_config_file
    from peftbench.errors import PeftbenchError
    from peftbench.studies.settings import tune_options

    good = tmp_path / "good.yaml"
    good.write_text("tune: true\ntune_lr_factors: [1, 0.5, 3]\n")
    cfg = load_config_file(good)
    assert tune_options(cfg, None, None) == (True, (1.0, 0.5, 3.0))
    assert tune_options(cfg, False, None) == (False, None)  # the command line wins (--no-tune)
    assert tune_options({"tune": True, "tune_lr_factors": "1,2"}, None, None) == (True, (1.0, 2.0))
    bad = tmp_path / "bad.yaml"
    bad.write_text("tune: please\n")
    with pytest.raises(PeftbenchError, match="tune must be true or false"):
        load_config_file(bad)
    bad.write_text("tune_lr_factors: [1, fast]\n")
    with pytest.raises(PeftbenchError, match="tune_lr_factors must be a list of numbers"):
        load_config_file(bad)
