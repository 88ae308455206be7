"""MLflow tracking: a tiny real study logged to a local file store, read back through MLflow's own client.

One run per trial, metrics equal to the store's records, no duplicates on a re-run or a second export, a
tracker that fails never loses the study, and each bad input is one line with nothing written.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

METHODS = ("BitFit", "LoRA-r8")


def _cli(argv: list[str]) -> int:
    """The CLI's own main(), in-process; returns the exit code."""
    from peftbench.cli.app import main

    saved = sys.argv
    sys.argv = ["peftbench", *argv]
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    finally:
        sys.argv = saved
    return 0


@pytest.fixture(scope="module")
def tracked(tiny_model, tiny_csv, tiny_ood_csv, tmp_path_factory) -> dict:
    """A two-trial study run with --track mlflow into a file store; its store and tracking URI."""
    d = tmp_path_factory.mktemp("tracked")
    uri = (d / "mlruns").as_uri()
    argv = ["run", "--model", tiny_model, "--dataset", tiny_csv, "--ood-dataset", tiny_ood_csv, "--preset", "quick",
            "--train-size", "48", "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--validation-size",
            "40", "--test-size", "80",
            "--methods", ",".join(METHODS), "--db", str(d / "store.db"), "--track", "mlflow", "--tracking-uri", uri]
    assert _cli(argv) == 0
    return {"argv": argv, "db": d / "store.db", "uri": uri, "dir": d}


def _runs(uri: str, study: str = "tradeoff") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(f"peftbench/{study}")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _store_rows(db: Path) -> list[dict]:
    from peftbench.store.db import Store

    with Store(db, create=False) as store:
        return store.rows()


def _numbers(record: dict) -> dict[str, float]:
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _assert_runs_equal_store(uri: str, db: Path) -> None:
    runs = {r.data.tags["trial_id"]: r for r in _runs(uri)}
    rows = _store_rows(db)
    assert len(runs) == len(rows) == len(METHODS)
    for row in rows:
        record, spec = json.loads(row["record_json"]), json.loads(row["spec_json"])
        run = runs[row["trial_id"]]
        numbers = _numbers(record)
        assert {"accuracy", "f1", "trainable_params", "adapter_bytes", "train_seconds"} <= set(numbers)
        assert run.data.metrics == numbers  # every numeric field, equal to the store's, and nothing else
        assert float(run.data.params["learning_rate"]) == record["learning_rate"]
        for key, value in spec["method"]["options"].items():
            assert run.data.params[f"option.{key}"] == str(value)
        tags = run.data.tags
        assert tags["status"] == row["status"] == "ok" and tags["method"] == row["method"]
        assert tags["split_hash"] == record["provenance"]["data"]["split_hash"]
        assert tags["version.torch"] == record["provenance"]["versions"]["torch"]
        assert run.info.status == "FINISHED"


def test_each_trial_is_one_run_with_the_store_s_numbers(tracked):
    _assert_runs_equal_store(tracked["uri"], tracked["db"])
    names = {r.data.tags["mlflow.runName"] for r in _runs(tracked["uri"])}
    assert {n.split()[0] for n in names} == set(METHODS)


def test_rerunning_the_study_adds_no_runs(tracked):
    before = {r.info.run_id for r in _runs(tracked["uri"])}
    assert _cli(tracked["argv"]) == 0
    assert {r.info.run_id for r in _runs(tracked["uri"])} == before


def test_export_twice_adds_none(tracked, tmp_path):
    fresh = (tmp_path / "exported").as_uri()
    for _ in range(2):
        assert _cli(["export", "--format", "mlflow", "--db", str(tracked["db"]), "--tracking-uri", fresh]) == 0
        _assert_runs_equal_store(fresh, tracked["db"])
    before = {r.info.run_id for r in _runs(tracked["uri"])}  # exporting into the tracked store: nothing new
    assert _cli(["export", "--format", "mlflow", "--db", str(tracked["db"]), "--tracking-uri", tracked["uri"]]) == 0
    assert {r.info.run_id for r in _runs(tracked["uri"])} == before


def test_a_changed_record_updates_its_own_run(tracked, tmp_path):
    """--force or a retried failure stores a new record for the same trial: its run follows, no new run."""
    from peftbench.config.spec import TrialSpec
    from peftbench.store.tracking import MlflowTracker

    uri = (tmp_path / "changed").as_uri()
    row = _store_rows(tracked["db"])[0]
    spec, record = TrialSpec.from_dict(json.loads(row["spec_json"])), json.loads(row["record_json"])
    tracker = MlflowTracker(uri)
    tracker.log(spec, {**record, "status": "failed", "accuracy": None}, "failed")
    tracker.log(spec, record, "ok")
    (run,) = _runs(uri)
    assert run.data.tags["status"] == "ok" and run.data.metrics["accuracy"] == record["accuracy"]


class _Boom:
    name = "boom"

    def __init__(self):
        self.calls = 0

    def log(self, spec, record, status):
        self.calls += 1
        raise ConnectionError("tracking server went away\nsecond line")


class _FakeExecutor:
    """Hands back ok outcomes with small records, so the runner's hook is tested without training."""

    def run(self, specs, data, on_event, on_start):
        from peftbench.execute.base import TrialOutcome

        for i, spec in enumerate(specs):
            on_start(spec)
            yield TrialOutcome(spec, "ok", {"trial_id": spec.trial_id, "method": spec.method.name,
                                            "accuracy": 0.5 + i / 10})


def test_a_failing_tracker_warns_once_and_the_study_goes_on(tiny_model, tiny_data_spec, tiny_train_spec,
                                                             tmp_path, capsys):
    from peftbench.config.spec import TrialSpec
    from peftbench.methods import parse_method
    from peftbench.studies.runner import run_trials

    specs = [TrialSpec(study="tradeoff", method=parse_method(m), model=tiny_model, data=tiny_data_spec,
                       train=tiny_train_spec) for m in METHODS]
    boom = _Boom()
    summary = run_trials(specs, tmp_path / "s.db", _FakeExecutor(), trackers=[boom])
    assert summary.ok == len(METHODS) and boom.calls == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(warnings) == 1 and "boom tracking stopped" in warnings[0] and "second line" not in warnings[0]
    assert [r["status"] for r in _store_rows(tmp_path / "s.db")] == ["ok", "ok"]


def _no_mlflow(monkeypatch) -> None:
    """Simulate an install without the extra: importing mlflow fails."""
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)


BAD = [
    ("unknown-tracker", ["--track", "wandb"], None, "unknown tracker 'wandb'"),
    ("unreachable-server", ["--track", "mlflow", "--tracking-uri", "http://127.0.0.1:9"], None,
     "cannot reach the MLflow tracking server at http://127.0.0.1:9"),
    ("run-without-mlflow", ["--track", "mlflow"], _no_mlflow, "pip install 'peftbench[mlflow]'"),
    ("uri-without-track", ["--tracking-uri", "file:///tmp/x"], None, "--tracking-uri needs --track mlflow"),
    ("export-without-mlflow", ["export", "--format", "mlflow", "--db", "{store}"], _no_mlflow,
     "pip install 'peftbench[mlflow]'"),
    ("export-unreachable", ["export", "--format", "mlflow", "--db", "{store}", "--tracking-uri",
                            "http://127.0.0.1:9"], None, "cannot reach the MLflow tracking server"),
]


@pytest.mark.parametrize("case_id,args,setup,phrase", BAD, ids=[b[0] for b in BAD])
def test_bad_tracking_input_is_one_line_and_writes_nothing(case_id, args, setup, phrase, tracked, tmp_path,
                                                           monkeypatch, capsys):
    from peftbench.execute.local import LocalExecutor

    def refuse(*a, **k):
        raise AssertionError("the study started trials: this input was not rejected")

    monkeypatch.setattr(LocalExecutor, "run", refuse)
    if setup:
        setup(monkeypatch)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "new" / "store.db"
    argv = [a.format(store=tracked["db"]) for a in args]
    if argv[0].startswith("--"):
        argv = ["run", "--model", "embedded", "--methods", "BitFit", "--db", str(db), *argv]
    store_before = tracked["db"].read_bytes()
    code = _cli(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and phrase in lines[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "something was written for a command that could not start"
    assert tracked["db"].read_bytes() == store_before
