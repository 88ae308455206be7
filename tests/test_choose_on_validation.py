"""Every choice reads validation-side figures; the test split is only reported.

Real tiny trials (a random 2-layer BERT) fill a store with three studies. A copy then gets the test figures
of its validation-worst method made perfect, straight in the SQLite records: test predictions := test
labels, accuracy / F1 / precision / recall / balanced accuracy := 1, and the perturbed rows (the first test
rows) all right. No recommendation (every scenario, with and without --min-accuracy), P(best), tied set,
Pareto front on accuracy, data-efficiency score or advice, or rank choice may move. The poisoned figures
still show where the test split is reported. Also here: generate-task macro F1 counts "other" as a miss.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli_main

from peftbench.analysis.confidence import macro_f1_rows, resample_metrics
from peftbench.analysis.curves import (
    DATA_EFFICIENCY_STUDY,
    RANK_SWEEP_STUDY,
    best_by_size,
    smallest_sufficient_rank,
    study_records,
)
from peftbench.analysis.recommend import Limits, data_advice, prepare, rank
from peftbench.analysis.scenarios import SCENARIOS, scenario_weights
from peftbench.stats.predictions import decode, encode
from peftbench.store.db import Store

METHODS = ["Full:lr=1e-3", "LoRA-AllLayers:lr=1e-2", "LoRA-r8:lr=1e-2", "LoRA-r4:lr=1e-2"]
TEST_METRICS = ("accuracy", "f1", "precision", "recall", "balanced_accuracy")


@pytest.fixture(scope="module")
def trained_store(tiny_model, tiny_csv, tiny_ood_csv, tmp_path_factory) -> Path:
    """Tradeoff (4 methods), data efficiency (200 and 400 examples) and a rank sweep (r = 2, 4, 8), trained
    for real on the tiny BERT: about 18 trials of a second or two each."""
    from peftbench.config.spec import DataSpec, TrainSpec
    from peftbench.studies.definitions import StudyOptions, data_efficiency, rank_sweep, tradeoff
    from peftbench.studies.runner import run_trials

    data = DataSpec(source=tiny_csv, validation_size=40, test_size=80, ood_source=tiny_ood_csv, ood_size=60,
                    max_length=32, perturbation_size=30)
    train = TrainSpec(train_size=400, epochs=3, batch_size=16, latency_runs=5, throughput_batches=1)
    opts = StudyOptions(model=tiny_model, data=data, methods=METHODS, train=train)
    sweep = StudyOptions(model=tiny_model, data=data, train=train, learning_rate=1e-2)
    specs = (tradeoff(opts) + data_efficiency(opts, sizes=[200, 400], epochs=4, batch_size=16)
             + rank_sweep(sweep, ranks=[2, 4, 8], train_size=400, epochs=3, batch_size=16))
    db = tmp_path_factory.mktemp("choose-on-validation") / "clean.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # one thread per trial: tiny models, shared cores
        summary = run_trials(specs, db)
    assert summary.ok == len(specs), summary
    return db


def records_of(db: Path) -> pd.DataFrame:
    with Store(db, create=False) as store:
        return store.records()


def validation_worst(records: pd.DataFrame) -> str:
    """The tradeoff method with the lowest validation accuracy among those that learned (not collapsed)."""
    trade = records[(records["study"] == "tradeoff") & ~records["collapsed"].astype(bool)]
    means = trade.groupby("method")["val_accuracy"].mean().sort_values(kind="stable")
    assert len(means) >= 3 and means.iloc[0] < means.iloc[-1], means  # enough methods learned to choose among
    return str(means.index[0])


def poison(clean: Path, target: Path, method: str) -> Path:
    """A copy of the store whose `method` trials (every study) have perfect test figures."""
    shutil.copy(clean, target)
    with sqlite3.connect(target) as conn:
        rows = conn.execute("SELECT trial_id, record_json FROM trials WHERE method = ? AND status = 'ok'",
                            (method,)).fetchall()
        assert rows
        for trial_id, text in rows:
            rec = json.loads(text)
            labels = decode(rec["test_labels"])
            rec["test_predictions"] = rec["test_labels"]
            rec.update({m: 1.0 for m in TEST_METRICS})
            first = labels[: int(rec["perturbation_rows"])]
            for key in [k for k in rec if k.startswith("perturbed_") and k.endswith("_predictions")]:
                rec[key] = encode(first)
                rec[key.replace("_predictions", "_accuracy")] = 1.0
            rec.update({k: 0.0 for k in rec if k.startswith("robustness_drop")})
            conn.execute("UPDATE trials SET record_json = ? WHERE trial_id = ?", (json.dumps(rec), trial_id))
    return target


@pytest.fixture(scope="module")
def stores(trained_store, tmp_path_factory) -> tuple[Path, Path, str]:
    worst = validation_worst(records_of(trained_store))
    bad = poison(trained_store, tmp_path_factory.mktemp("poisoned") / "poisoned.db", worst)
    poisoned = records_of(bad)
    assert (poisoned.loc[poisoned["method"] == worst, "accuracy"] == 1.0).all()  # the poison is in the store
    return trained_store, bad, worst


def decisions(db: Path, min_accuracy: float) -> dict:
    """Every choice the decision layer makes on this store, in a comparable form."""
    records = records_of(db)
    prep = prepare(records)
    out = {"dimension scores": prep.dims.scores}
    for name in SCENARIOS:  # each without limits, and with --min-accuracy
        for kind, limits in (("free", Limits()), ("limited", Limits(min_accuracy=min_accuracy))):
            rec = rank(prep, scenario_weights(name), limits)
            out[(name, kind, "ranking")] = rec.ranking  # scores, dimensions and P(best)
            out[(name, kind, "tied")] = rec.tied
            out[(name, kind, "excluded")] = [(e.method, e.limit, e.metric) for e in rec.excluded]
    sweep = study_records(prep.records, RANK_SWEEP_STUDY)
    choice = smallest_sufficient_rank(sweep)
    out["rank"] = (choice.rank, choice.best_rank, choice.criterion, choice.val_accuracy)
    out["best by size"] = best_by_size(study_records(prep.records, DATA_EFFICIENCY_STUDY))[
        ["train_size", "method", "val_accuracy", "tied"]]
    out["data advice"] = data_advice(prep.records)
    return out


def run_cli(*args: str) -> str:
    """The command's stdout, through the CLI's main() in this process (no interpreter start-up per call)."""
    return run_cli_main(*args).stdout


def front_rows(stdout: str) -> dict[str, list[str]]:
    """method -> its cells up to P(on front) in `peftbench pareto`'s table (the reported test column,
    which shows the poison, is the last one and left out)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 5 and cells[0] and cells[0] != "method":
            rows[cells[0]] = cells[:-1]
    return rows


def same(clean, poisoned) -> bool:
    if isinstance(clean, pd.DataFrame):
        return clean.shape == poisoned.shape and bool(clean.equals(poisoned))
    return clean == poisoned


def test_poisoned_test_split_moves_no_choice(stores):
    clean_db, bad_db, worst = stores
    records = records_of(clean_db)
    trade = records[records["study"] == "tradeoff"]
    # a limit just above the worst method's clean test accuracy: a limit read on test would drop it from the
    # clean store and keep it in the poisoned one
    limit = float(trade.loc[trade["method"] == worst, "accuracy"].mean()) + 1e-6
    clean, poisoned = decisions(clean_db, limit), decisions(bad_db, limit)
    moved = [key for key in clean if not same(clean[key], poisoned[key])]
    assert moved == [], moved
    # the choice is real: the worst method is ranked, and --min-accuracy (read on validation) excludes it
    assert worst in clean[("balanced", "free", "ranking")].index
    excluded = clean[("balanced", "limited", "excluded")]
    val = prepare(records).dims.means["val_accuracy"]
    assert sorted(m for m, _, _ in excluded) == sorted(val.index[val < limit]) and worst in val.index[val < limit]
    assert {metric for _, _, metric in excluded} == {"val_accuracy"}


def test_pareto_front_on_accuracy_does_not_move(stores):
    clean_db, bad_db, worst = stores
    args = ("pareto", "--objectives", "accuracy:max,trainable_params:min")
    clean, poisoned = run_cli(*args, "--db", str(clean_db)), run_cli(*args, "--db", str(bad_db))
    clean_rows, bad_rows = front_rows(clean), front_rows(poisoned)
    assert worst in clean_rows and clean_rows == bad_rows
    assert "accuracy is read on validation (val_accuracy)" in clean


def test_recommend_prints_the_winners_test_figures_beside_the_choice(stores):
    from peftbench.analysis.held_out import held_out, held_out_table
    from peftbench.stats.intervals import metric_interval

    clean_db, bad_db, worst = stores
    records = records_of(clean_db)
    prep = prepare(records)
    rec = rank(prep, scenario_weights("performance-critical"))
    trials = prep.selected[prep.selected["method"] == rec.top].to_dict("records")
    interval = metric_interval(trials, "accuracy")
    assert rec.held_out.test_accuracy == pytest.approx(interval.mean)
    assert (rec.held_out.test_accuracy_low, rec.held_out.test_accuracy_high) == pytest.approx(
        (interval.ci_low, interval.ci_high))
    assert rec.held_out.test_f1 == pytest.approx(metric_interval(trials, "f1").mean)
    table = held_out_table(prep.selected, list(rec.ranking.index))  # what a report shows beside a ranking
    assert list(table.index) == list(rec.ranking.index)
    assert table.loc[rec.top, "test_accuracy_high"] == pytest.approx(rec.held_out.test_accuracy_high)
    # the poisoned figures are still reported, as they are, where the test split is reported
    assert held_out(records_of(bad_db), worst).test_accuracy == 1.0
    out = run_cli("recommend", "--db", str(clean_db), "--scenario", "performance-critical")
    assert f"Recommended: {rec.top}" in out and "chosen on validation" in out
    assert f"test accuracy {interval.mean:.3f} [{interval.ci_low:.3f}, {interval.ci_high:.3f}]" in out
    every = run_cli("recommend", "--db", str(bad_db), "--all-scenarios")
    clean_every = run_cli("recommend", "--db", str(clean_db), "--all-scenarios")
    assert "its test accuracy [95% CI]" in every
    for name in SCENARIOS:
        line = next(ln for ln in every.splitlines() if f" {name} " in ln)
        clean_line = next(ln for ln in clean_every.splitlines() if f" {name} " in ln)
        # the winner is the clean store's, whatever the poisoned test figures printed beside it
        assert line.split("│")[2] == clean_line.split("│")[2], (line, clean_line)


# --- generate tasks: "other" is a miss, never a class ---------------------------------------------------
def test_macro_f1_over_the_task_classes_with_stray_answers():
    from peftbench.tasks.generate.evaluate import label_metrics

    labels = np.repeat([0, 1], 50)
    preds = labels.copy()
    preds[0] = 2  # one generated answer that names no class ("other" = num_labels)
    assert macro_f1_rows(preds[None], labels[None], task_classes=2)[0] == pytest.approx(0.995, abs=5e-4)
    assert macro_f1_rows(preds[None], labels[None], task_classes=2)[0] == pytest.approx(
        label_metrics(labels, preds, 2)["f1"])  # the trial's own figure
    assert macro_f1_rows(preds[None], labels[None])[0] == pytest.approx(0.663, abs=5e-4)  # "other" as a class
    many = labels.copy()
    many[[0, 1, 50, 51, 52]] = 2  # five stray answers, both classes
    assert macro_f1_rows(many[None], labels[None], task_classes=2)[0] == pytest.approx(
        label_metrics(labels, many, 2)["f1"])


def test_generate_records_resample_macro_f1_over_their_classes():
    labels = np.repeat([0, 1], 50)
    preds = labels.copy()
    preds[[0, 99]] = 2
    rec = {"method": "LoRA-r8", "seed": 0, "study": "tradeoff", "num_labels": 2, "val_labels": encode(labels),
           "val_predictions": encode(preds), "val_accuracy": .98, "val_f1": 0.98}
    boot = resample_metrics(pd.DataFrame([rec]), ["LoRA-r8"], resamples=200)
    assert abs(float(np.mean(boot.values["val_f1"])) - 0.98) < 0.01  # not ~0.66: "other" is no class


# --- a front is a choice -------------------------------------------------------------------------------
def test_pareto_objectives_read_validation_and_refuse_test_only_figures():
    from peftbench.analysis.pareto import parse_objectives
    from peftbench.errors import PeftbenchError

    known = ["accuracy", "val_accuracy", "f1", "val_f1", "robustness_drop", "trainable_params"]
    objs = parse_objectives("accuracy:max,f1:max,trainable_params:min", known)
    assert [(o.metric, o.asked) for o in objs] == [("val_accuracy", "accuracy"), ("val_f1", "f1"),
                                                   ("trainable_params", None)]
    with pytest.raises(PeftbenchError, match="robustness_drop is measured on test rows"):
        parse_objectives("robustness_drop:max,trainable_params:min", known)
    with pytest.raises(PeftbenchError, match=r"reads it on validation \(val_accuracy\)"):
        parse_objectives("accuracy:max,trainable_params:min", ["accuracy", "trainable_params"])
