"""The CLI on a tiny model: run, results, export, resume; each trial in its own process.

Commands run through the CLI's own main() in this process (conftest's cli_main): the real `python -m
peftbench.cli` process is what test_analysis, test_faults and test_api_scripts start. A crashing trial that
does not stop the study is test_faults' test_crash_hang_and_death_are_failed_with_reasons_then_retried.
"""

import json
import sqlite3

import pytest

# Small evaluation sets: what these tests read is the bookkeeping, not the figures.
SMALL = ["--preset", "quick", "--validation-size", "40", "--test-size", "80", "--epochs", "1", "--batch-size", "16",
         "--max-length", "32"]


@pytest.fixture
def tiny_run_args(tiny_model, tiny_csv, tiny_ood_csv, tmp_path):
    db = tmp_path / "store.db"
    return db, ["--model", tiny_model, "--dataset", tiny_csv, "--ood-dataset", tiny_ood_csv, "--train-size", "48",
                *SMALL, "--db", str(db)]


def test_run_results_export_resume_and_study_all(tiny_run_args, tmp_path, cli_main):
    """run, export and resume; then `study all` on the same store: tradeoff (its two trials already there
    from `run`), data-efficiency (nested sizes) and rank-sweep land in one store; results prints the AUC
    table and the smallest sufficient rank; a re-run trains nothing."""
    cli = cli_main
    db, args = tiny_run_args
    first = cli("run", "--methods", "Full,LoRA-r4,BitFit", *args)
    assert "LoRA-r4" in first.stdout and "test acc" in first.stdout
    assert "robust drop leaves out: case (leaves the token ids unchanged" in " ".join(first.stdout.split())
    out = tmp_path / "records.json"
    cli("export", "--format", "json", "--db", str(db), "-o", str(out))
    records = json.loads(out.read_text())
    assert {r["method"] for r in records} == {"Full", "LoRA-r4", "BitFit"}
    for r in records:
        assert r["status"] == "ok" and r["trainable_params"] > 0 and r["peak_rss_mb"] > 0
        assert r["provenance"]["git_hash"] is None or len(r["provenance"]["git_hash"]) == 40
    # each trial ran in its own fresh process: baseline memory is measured before any model exists
    assert len({r["provenance"]["start_time"] for r in records}) >= 1
    with sqlite3.connect(db) as conn:
        before = dict(conn.execute("SELECT trial_id, finished_at FROM trials").fetchall())
    again = cli("run", "--methods", "Full,LoRA-r4,BitFit,LoRA-r8", *args)
    assert "3 already in the store" in again.stderr
    with sqlite3.connect(db) as conn:
        after = dict(conn.execute("SELECT trial_id, finished_at FROM trials").fetchall())
    assert len(after) == 4
    assert all(after[k] == v for k, v in before.items())  # finished trials were not re-run
    csv_out = tmp_path / "records.csv"
    cli("export", "--format", "csv", "--db", str(db), "-o", str(csv_out))
    assert csv_out.read_text().count("\n") == 5

    study = ["study", "all", *args, "--methods", "Full,LoRA-r4", "--sizes", "16,48", "--ranks", "1,2"]
    first = cli(*study)
    assert "6 trials ok, 0 failed, 0 cancelled, 2 already in the store" in first.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT study, method, train_size FROM trials WHERE status = 'ok'").fetchall()
    assert sorted(rows) == sorted([
        ("tradeoff", "Full", 48), ("tradeoff", "LoRA-r4", 48), ("tradeoff", "BitFit", 48),
        ("tradeoff", "LoRA-r8", 48),  # from `run`
        ("data-efficiency", "Full", 16), ("data-efficiency", "Full", 48),
        ("data-efficiency", "LoRA-r4", 16), ("data-efficiency", "LoRA-r4", 48),
        ("rank-sweep", "LoRA-r1", 48), ("rank-sweep", "LoRA-r2", 48)])
    shown = cli("results", "--db", str(db), "--study", "data-efficiency").stdout
    assert "val AUC" in shown and "test AUC" in shown and "16-48 (2)" in shown
    assert "Rank sweep: LoRA r=" in cli("results", "--db", str(db), "--study", "rank-sweep").stdout
    import peftbench as pb

    auc = pb.data_efficiency(db)
    assert set(auc.index) == {"Full", "LoRA-r4"} and auc["normalized_auc"].between(0, 1).all()
    assert pb.rank_choice(db).rank in (1, 2)
    again = cli(*study)
    assert "8 already in the store" in again.stderr


def test_methods_dimensions_params_commands(tiny_model, cli_main):
    cli = cli_main
    assert "PrefixTuning-len32" in cli("methods").stdout
    dims = cli("dimensions").stdout
    for d in ("Parameter efficiency", "Computational efficiency", "Task performance", "Generalization",
              "Data efficiency", "Inference efficiency"):
        assert d in dims
    params = cli("params", "--model", tiny_model, "--methods", "LoRA-r8,BitFit").stdout
    assert "LoRA-r8" in params and "BitFit" in params


@pytest.mark.parametrize("args,phrase", [
    (["run", "--methods", "Nope"], "unknown method 'Nope'"),
    (["run", "--methods", "lora:r=0"], "r must be >= 1"),
    (["run", "--train-size", "-5"], "train size must be positive"),
    (["run", "--epochs", "0"], "epochs must be positive"),
    (["run", "--text-column", "review"], "no text column 'review'"),
])
def test_bad_input_one_line_no_store(tiny_run_args, args, phrase, cli_main):
    db, base = tiny_run_args
    base = [a for a in base]
    # later options override earlier ones in click, so the bad value wins
    proc = cli_main(args[0], *base, *args[1:], check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and phrase in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not db.exists()


def test_config_file_fills_what_the_command_line_leaves_out(tiny_model, tiny_csv, tiny_ood_csv, tmp_path,
                                                           cli_main):
    """One precedence for every option: command line, then the config file, then the default. The config's
    db is where the trials land; its methods are overridden by --methods."""
    import yaml

    db = tmp_path / "from_config.db"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": tiny_model, "dataset": tiny_csv, "ood_dataset": tiny_ood_csv, "train_size": 32, "epochs": 1,
        "batch_size": 16, "max_length": 32, "db": str(db), "methods": ["Full", "LoRA-r4"], "seeds": 2,
        "preset": "quick", "validation_size": 40, "test_size": 80}))
    cli_main("run", "--config", str(cfg), "--methods", "BitFit", "--seeds", "1")
    assert db.exists() and not (tmp_path / "peftbench-results").exists()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT method, seed FROM trials").fetchall()
    assert rows == [("BitFit", 0)]  # the command line's methods and seeds, the config's db
    with sqlite3.connect(db) as conn:
        record = json.loads(conn.execute("SELECT record_json FROM trials").fetchone()[0])
    assert (record["train_size"], record["epochs"]) == (32, 1)  # from the config
