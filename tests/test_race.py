"""--race: bad input refused in one line, the decision rule on hand-made records (the seed noise of a
one-seed configuration is never zero; a clear loser leaves, a tie stays, a stable tied set stops), and real
races on tiny random BERT trials: a planted gap stops after round 1 (+ at most one), and a race killed in
round 2 continues where it stopped, rerunning no trial and keeping its decisions.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli_main

from peftbench.analysis.confidence import resample_metrics
from peftbench.analysis.race import OUT, STABLE, RaceRule, decide
from peftbench.analysis.seed_noise import PRIOR_SD, seed_noise
from peftbench.stats.predictions import encode

PERFORMANCE = {"performance": 1.0}
VAL_N = 400
VAL_LABELS = np.random.default_rng(0).permutation(np.repeat([0, 1], VAL_N // 2))


# --- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, says", [
    (["--race", "--seeds", "3"], "leave out --seeds"),
    (["--race", "--confidence", "0.5"], "--confidence must be between 0.5 and 1"),
    (["--race", "--confidence", "1"], "--confidence must be between 0.5 and 1"),
    (["--race", "--confidence", "1.2"], "--confidence must be between 0.5 and 1"),
    (["--race", "--max-seeds", "1"], "--max-seeds must be a whole number of at least 2"),
    (["--race", "--scenario", "fastest"], "unknown scenario 'fastest'"),
    (["--race", "--scenario", "balanced", "--weights", "performance=1"], "only one of --scenario and --weights"),
    (["--confidence", "0.95"], "--confidence needs --race"),
    (["--race", "--tune"], "--race cannot be combined with --tune"),
    (["--race", "--force"], "--race cannot be combined with --force"),
    (["--race", "--budget", "20m"], "--budget and --max-memory limit a study planned in full"),
    (["--race", "--max-memory", "4"], "--budget and --max-memory limit a study planned in full"),
])
def test_bad_race_input_is_one_line_exit_2_and_writes_nothing(extra, says, tiny_model, tiny_csv, tmp_path):
    db = tmp_path / "never" / "store.db"
    result = run_cli_main("run", "--model", tiny_model, "--dataset", tiny_csv, "--methods", "BitFit", "--db", db,
                          *extra, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert says in lines[0]
    assert not db.parent.exists()


def test_race_refuses_a_sweep_over_sizes(tiny_model, tiny_csv, tmp_path):
    db = tmp_path / "store.db"
    result = run_cli_main("study", "data-efficiency", "--race", "--model", tiny_model, "--dataset", tiny_csv,
                          "--db", db, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "not data-efficiency" in lines[0]
    assert not db.exists()


# --- the decision rule on hand-made records ------------------------------------------------------------
def record(config: str, seed: int, acc: float) -> dict:
    """A trial with validation predictions right on `acc` of the rows (which rows: per config and seed)."""
    rng = np.random.default_rng([zlib.crc32(config.encode()), seed])
    pred = VAL_LABELS.copy()
    wrong = rng.choice(VAL_N, round((1 - acc) * VAL_N), replace=False)
    pred[wrong] = 1 - pred[wrong]
    f1 = np.mean([2 * np.sum((pred == c) & (VAL_LABELS == c)) / (np.sum(pred == c) + np.sum(VAL_LABELS == c))
                  for c in (0, 1)])
    return {"trial_id": f"{config}-{seed}", "study": "tradeoff", "method": config, "race_config": config,
            "seed": seed, "val_predictions": encode(pred), "val_labels": encode(VAL_LABELS),
            "val_accuracy": float(np.mean(pred == VAL_LABELS)), "val_f1": float(f1), "val_majority_rate": 0.5}


def test_one_seed_gets_seed_noise_never_zero():
    perfect = pd.DataFrame([record("A", 0, 1.0)])
    rows_only = resample_metrics(perfect, ["A"])
    assert np.all(rows_only.values["val_accuracy"] == 1.0)  # every row right: rows alone say no doubt at all
    noise = seed_noise(perfect)
    assert noise.sd == pytest.approx(PRIOR_SD) and noise.dof["val_accuracy"] == 0  # each figure its own prior
    assert noise.sd["ood_accuracy"] > noise.sd["val_f1"] > noise.sd["val_accuracy"]
    hierarchical = resample_metrics(perfect, ["A"], seed_sd=noise.sd)
    assert hierarchical.values["val_accuracy"].std() > 0.005  # another seed could do worse
    # two seeds that agree exactly measure no spread; the prior keeps the pooled figure above zero
    twins = pd.DataFrame([record("A", 0, 0.8), {**record("A", 0, 0.8), "seed": 1}])
    pooled = seed_noise(twins).sd["val_accuracy"]
    assert 0 < pooled < PRIOR_SD["val_accuracy"] and seed_noise(twins).dof["val_accuracy"] == 1


def test_a_clear_loser_leaves_a_tie_stays_and_a_stable_tied_set_stops():
    names = {"A": "A", "B": "B", "C": "C"}
    rule = RaceRule(confidence=0.9, max_seeds=3)
    first = pd.DataFrame([record("A", 0, 0.86), record("B", 0, 0.855), record("C", 0, 0.70)])
    one = decide(first, PERFORMANCE, "tradeoff", 1, list(names), names, {c: 1 for c in names}, None, rule)
    status = {s.config: s.status for s in one.standings}
    assert status["C"] == OUT and set(one.contenders) == {"A", "B"} and one.stop is None
    assert set(one.tied) == {"A", "B"} and one.p_best < 0.9
    assert one == decide(first, PERFORMANCE, "tradeoff", 1, list(names), names, {c: 1 for c in names}, None,
                         rule)  # a function of the stored trials: a restarted race decides the same
    second = pd.concat([first, pd.DataFrame([record("A", 1, 0.85), record("B", 1, 0.86)])], ignore_index=True)
    two = decide(second, PERFORMANCE, "tradeoff", 2, one.contenders, names, {"A": 2, "B": 2, "C": 1}, one.tied,
                 rule)
    assert two.stop == STABLE and set(two.tied) == {"A", "B"}
    assert {s.config: s.seeds for s in two.standings} == {"A": 2, "B": 2, "C": 1}
    assert any("pooled over 2 configuration(s)" in n for n in two.notes)  # A's and B's seeds measure it now


# --- real races on tiny trials ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_study(tiny_model, tmp_path_factory):
    """Keywords of pb.run for a tiny study; one store shared by the races below (they share a trial)."""
    from conftest import make_rows, write_csv

    d = tmp_path_factory.mktemp("race")
    data, ood = write_csv(d / "reviews.csv", make_rows(300)), write_csv(d / "ood.csv", make_rows(80, seed=7))
    return {"model": tiny_model, "dataset": str(data), "ood_dataset": str(ood), "preset": "quick",
            "train_size": 96, "epochs": 3, "batch_size": 8, "max_length": 16, "validation_size": 40,
            "test_size": 60, "latency_runs": 5, "throughput_batches": 1, "db": str(d / "race.db")}


def test_a_planted_gap_stops_after_the_first_round(tiny_study):
    import peftbench as pb

    # full fine-tuning at 1e-2 learns the tiny task (validation accuracy 1.0); LoRA-r4 barely does
    df = pb.run(race=True, methods=["full:lr=1e-2", "lora:r=4:lr=1e-2"], **tiny_study)
    answer = df.attrs["race"]
    assert answer.final.round <= 2 and answer.final.stop in ("confident", "one contender left")
    assert answer.final.label(answer.final.leader) == "Full:lr=0.01"
    assert answer.trials == len(df) <= 3 and set(df["status"]) == {"ok"}
    races = pb.races(tiny_study["db"])
    lora = races[(races["round"] == 1) & races["label"].str.startswith("lora")]
    assert lora["status"].iloc[0] in ("raced out", "collapsed")
    assert len(pb.results(tiny_study["db"])) == len(df)  # raced out, still stored with its figures
    shown = run_cli_main("results", "--db", tiny_study["db"]).stdout  # the race's table under the results
    assert f"race {answer.race_id}" in shown and "raced out in round 1" in shown
    advice = " ".join(run_cli_main("recommend", "--db", tiny_study["db"]).stdout.split())  # lines wrap
    assert f"note: race {answer.race_id}" in advice and "raced out, with fewer seeds: lora" in advice
    from peftbench.report.page import Page
    from peftbench.report.sections.races import races_section

    page = Page("plots")
    races_section(page, races)  # the report's section, from the same frame
    html = "".join(page.parts)
    assert f"race {answer.race_id}" in html and "raced out in round 1" in html


class StopsInRoundTwo:
    """A LocalExecutor that dies like a killed driver after the first trial of round 2 (seed 1)."""

    def __init__(self):
        from peftbench.execute.local import LocalExecutor

        self.inner = LocalExecutor(workers=1)

    def cancel(self):
        self.inner.cancel()

    def run(self, specs, data, on_event, on_start):
        for outcome in self.inner.run(specs, data, on_event, on_start):
            yield outcome
            if outcome.spec.seed == 1:
                raise KeyboardInterrupt


def test_a_killed_race_continues_where_it_stopped(tiny_study, capsys):
    import sqlite3

    import peftbench as pb

    methods = ["full:lr=1e-2", "full:lr=1.0001e-2"]  # two configurations that learn alike: a tie
    with pytest.raises(KeyboardInterrupt):
        pb.run(race=True, methods=methods, max_seeds=3, executor=StopsInRoundTwo(), **tiny_study)
    before = pb.races(tiny_study["db"])
    race_id = before["race_id"].iloc[-1]
    before = before[before["race_id"] == race_id]
    assert list(before["round"].unique()) == [1]  # round 2 was not decided: it did not finish
    df = pb.run(race=True, methods=methods, max_seeds=3, **tiny_study)
    assert "continuing after round 1" in capsys.readouterr().out
    answer = df.attrs["race"]
    assert answer.race_id == race_id and answer.final.round >= 2 and answer.run_now == 1  # only the missing one
    after = pb.races(tiny_study["db"], race_id=race_id)
    cols = ["config", "seeds", "score", "p_best", "share_tied", "status"]
    pd.testing.assert_frame_equal(after[after["round"] == 1][cols].reset_index(drop=True),
                                  before[cols].reset_index(drop=True))
    with sqlite3.connect(tiny_study["db"]) as conn:
        attempts = dict(conn.execute("SELECT trial_id, attempts FROM trials").fetchall())
    assert set(answer.trial_ids) <= set(attempts) and all(attempts[t] == 1 for t in answer.trial_ids)
    assert len(answer.trial_ids) == sum(answer.round_trials) == 2 * answer.final.round


def test_a_race_decided_under_other_seed_noise_priors_is_another_race(monkeypatch):
    """A stored race continues only under the rule that decided it: new priors start a new race (the trials
    are reused as in any study), never a continuation of decisions made under the old ones."""
    import peftbench.studies.race as race_module
    from peftbench.studies.race import race_id, race_settings

    settings = race_settings({"race": True}, studies=["tradeoff"])
    before = race_id("tradeoff", ["a", "b"], settings)
    assert race_id("tradeoff", ["a", "b"], settings) == before  # the same command: the same race
    monkeypatch.setattr(race_module, "PRIOR_SD", {**PRIOR_SD, "val_accuracy": 2 * PRIOR_SD["val_accuracy"]})
    assert race_id("tradeoff", ["a", "b"], settings) != before


def test_one_seed_on_another_setup_than_the_priors_says_the_priors_may_be_small():
    """The priors were measured on the default setup; a one-seed store of another (fewer rows) is told so."""
    small = pd.DataFrame([{**record("A", 0, 0.8), "model": "embedded", "train_size": 256, "epochs": 2},
                          {**record("B", 0, 0.7), "model": "embedded", "train_size": 256, "epochs": 2}])
    text = seed_noise(small).text()
    assert "not the priors' setup (256 training rows)" in text and "--seeds 2" in text
    default = small.assign(train_size=1000)
    assert "not the priors' setup" not in seed_noise(default).text()
    measured = pd.concat([small, small.assign(seed=1, val_accuracy=0.75)], ignore_index=True)
    assert "not the priors' setup" not in seed_noise(measured).text()  # the store measures its own
