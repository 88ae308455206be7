"""`export --summary`: the per-configuration table with each figure's interval and how it was computed, in
every file format, equal to the results table's; and the one-seed label ("rows only, 1 seed") wherever an
interval is shown. The store is written from hand-made records holding per-row predictions: what is
tested is reading a store back, not training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from peftbench.config.spec import DataSpec, MethodSpec, TrainSpec, TrialSpec
from peftbench.stats.predictions import encode
from peftbench.store.db import Store

ROWS = 200


def _spec(method: str, seed: int) -> TrialSpec:
    return TrialSpec(study="tradeoff", method=MethodSpec(method, "full" if method == "Full" else "lora"),
                     model="tiny", data=DataSpec(source="reviews.csv", test_size=ROWS),
                     train=TrainSpec(train_size=64, epochs=1, batch_size=16), seed=seed)


def _predictions(accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([0, 1] * (ROWS // 2))
    p = y.copy()
    wrong = np.random.default_rng(seed).choice(ROWS, round((1 - accuracy) * ROWS), replace=False)
    p[wrong] ^= 1
    return y, p


def _record(spec: TrialSpec, accuracy: float, train_seconds: float) -> dict:
    y, p = _predictions(accuracy, 10 * spec.seed + len(spec.method.name))
    vy, vp = _predictions(accuracy - 0.02, 100 + spec.seed)
    return {"trial_id": spec.trial_id, "study": spec.study, "method": spec.method.name, "seed": spec.seed,
            "train_size": spec.train.train_size, "status": "ok", "accuracy": float((p == y).mean()),
            "val_accuracy": float((vp == vy).mean()), "test_labels": encode(y), "test_predictions": encode(p),
            "val_labels": encode(vy), "val_predictions": encode(vp), "train_seconds": train_seconds,
            "trainable_params": 1000 if spec.method.name == "Full" else 10, "collapsed": False,
            "provenance": {"data": {"split_hash": "aaaa1111bbbb2222", "dataset": "reviews.csv (600 rows)"}}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Full with 3 seeds, LoRA-r8 with 1: one interval of each kind in one setup."""
    db = tmp_path_factory.mktemp("summary") / "s.db"
    with Store(db) as s:
        for spec, acc, secs in [(_spec("Full", 0), 0.85, 30.0), (_spec("Full", 1), 0.80, 32.0),
                                (_spec("Full", 2), 0.88, 31.0), (_spec("LoRA-r8", 0), 0.78, 20.0)]:
            s.mark_running(spec.to_dict(), spec.trial_id)
            s.finish(spec.trial_id, "ok", _record(spec, acc, secs))
    return db


def _results_frame(db) -> pd.DataFrame:
    """The frame `peftbench results` prints its table from."""
    from peftbench.report.tables import summary_frame

    with Store(db, create=False) as s:
        return summary_frame(s.records()).set_index("method")


def test_summary_beside_the_records_has_the_results_tables_intervals(store, tmp_path, cli_main):
    out = tmp_path / "results.csv"
    done = cli_main("export", "--db", store, "--format", "csv", "-o", out, "--summary")
    assert "results.summary.csv" in done.stderr
    assert len(pd.read_csv(out)) == 4  # the raw records, one per trial, as before
    summary = pd.read_csv(tmp_path / "results.summary.csv").set_index("method")
    table = _results_frame(store)
    assert sorted(summary.index) == ["Full", "LoRA-r8"]
    assert summary.loc["Full", "seeds"] == 3 and summary.loc["LoRA-r8", "seeds"] == 1
    for method in ("Full", "LoRA-r8"):
        for m in ("accuracy", "val_accuracy"):
            assert summary.loc[method, m] == pytest.approx(table.loc[method, f"{m}_mean"])
            assert summary.loc[method, f"{m}_ci_low"] == pytest.approx(table.loc[method, f"{m}_ci_low"])
            assert summary.loc[method, f"{m}_ci_high"] == pytest.approx(table.loc[method, f"{m}_ci_high"])
            assert summary.loc[method, f"{m}_ci_low"] < summary.loc[method, m] < summary.loc[method, f"{m}_ci_high"]
    assert summary.loc["LoRA-r8", "accuracy_ci_method"] == \
        "bootstrap over test rows (1 seed: row noise only, no training randomness)"
    assert summary.loc["Full", "val_accuracy_ci_method"] == \
        "bootstrap over validation rows and spread over seeds (3 seeds)"
    assert summary.loc["Full", "train_seconds_ci_method"] == "t-interval over seeds (3 seeds)"
    assert summary.loc["LoRA-r8", "train_seconds_ci_method"] == "none: 1 seed"
    assert pd.isna(summary.loc["LoRA-r8", "train_seconds_ci_low"])
    assert summary.loc["Full", "trainable_params_ci_method"] == "none: fixed by the method and model"
    assert pd.isna(summary.loc["Full", "trainable_params_ci_low"])  # not a zero-width interval
    assert summary.loc["LoRA-r8", "diff_vs_full"] == pytest.approx(table.loc["LoRA-r8", "diff_vs_baseline"])
    assert summary.loc["LoRA-r8", "vs_full_test"].startswith("paired over test rows")
    assert summary["setup"].nunique() == 1 and summary["setup_label"].str.contains("reviews.csv").all()


def test_every_file_format_carries_the_same_summary(store, tmp_path, cli_main):
    frames = {}
    for fmt in ("json", "parquet", "csv"):
        cli_main("export", "--db", store, "--format", fmt, "-o", tmp_path / f"r.{fmt}", "--summary")
        path = tmp_path / f"r.summary.{fmt}"
        frames[fmt] = (pd.DataFrame(json.loads(path.read_text())) if fmt == "json" else
                       pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)).set_index("method")
    for fmt in ("parquet", "csv"):
        for col in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "val_accuracy_ci_high", "seeds"):
            assert frames[fmt][col].tolist() == pytest.approx(frames["json"][col].tolist())
        assert frames[fmt]["accuracy_ci_method"].tolist() == frames["json"]["accuracy_ci_method"].tolist()
    # no --output: stdout gets the summary alone (a table to paste), not the records
    shown = json.loads(cli_main("export", "--db", store, "--summary").stdout)
    assert [r["method"] for r in shown] == ["Full", "LoRA-r8"] and "test_predictions" not in shown[0]


def test_python_api_writes_the_same_summary(store, tmp_path, cli_main):
    import peftbench as pb

    cli_main("export", "--db", store, "--format", "csv", "-o", tmp_path / "cli.csv", "--summary")
    pb.export(tmp_path / "api.csv", fmt="csv", db=store, summary=True)
    assert (tmp_path / "api.summary.csv").read_text() == (tmp_path / "cli.summary.csv").read_text()
    assert (tmp_path / "api.csv").read_text() == (tmp_path / "cli.csv").read_text()
    frame = pb.summary_table(store).set_index("method")
    assert frame.loc["LoRA-r8", "accuracy_ci_method"].startswith("bootstrap over test rows (1 seed")


def test_bad_summary_requests_are_one_line_and_write_nothing(store, tmp_path, cli_main):
    mlflow = cli_main("export", "--db", store, "--format", "mlflow", "--summary", check=False)
    assert mlflow.returncode == 2 and "--summary writes a file" in mlflow.stderr
    assert len(mlflow.stderr.strip().splitlines()) == 1
    (tmp_path / "r.summary.csv").mkdir()  # the summary's place is taken: neither file may appear
    blocked = cli_main("export", "--db", store, "--format", "csv", "-o", tmp_path / "r.csv", "--summary",
                       check=False)
    assert blocked.returncode == 2 and "is a directory" in blocked.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.summary.csv"]
    from peftbench.errors import PeftbenchError
    import peftbench as pb

    with pytest.raises(PeftbenchError, match="unknown export format"):
        pb.export(tmp_path / "x.csv", fmt="xlsx", db=store, summary=True)


def test_one_seed_intervals_say_rows_only(store):
    from rich.console import Console

    from peftbench.report.page import Page
    from peftbench.report.sections.results import results_section
    from peftbench.report.tables import interval_label, results_table

    assert interval_label([1, 1]) == "95% CI (rows only, 1 seed)"
    assert interval_label([3, 3]) == "95% CI (rows and seeds, 3 seeds)"
    assert interval_label([1, 3]) == "95% CI (rows and seeds; rows only where 1 seed)"
    with Store(store, create=False) as s:
        records = s.records()
    one_seed = records[records["method"] == "LoRA-r8"]
    console = Console(width=300, record=True)
    console.print(results_table(one_seed, "peftbench: t"))
    text = " ".join(console.export_text().split())
    assert "mean ± 95% CI (rows only, 1 seed): bootstrap over the evaluated rows; training randomness" in text
    console.print(results_table(records[records["method"] == "Full"], "peftbench: t"))
    assert "95% CI (rows and seeds, 3 seeds)" in " ".join(console.export_text().split())
    page = Page("png")
    results_section(page, one_seed)
    assert "mean ± 95% CI (rows only, 1 seed)" in "".join(page.parts)
