"""Nothing lost: a killed driver, Ctrl-C, crashing, hanging and dying trials, retries, and stores that are
not ours. Real processes and real signals, no mocks; trials fail through the test-only fault hook
(PEFTBENCH_TEST_FAULTS, read inside the trial process).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import make_rows, run_cli_main, write_csv


@pytest.fixture
def study(tiny_model, tmp_path):
    """(db, args): a small, quick study on the tiny model; each trial takes a few seconds."""
    data = write_csv(tmp_path / "reviews.csv", make_rows(150))
    db = tmp_path / "store.db"
    return db, ["run", "--model", tiny_model, "--dataset", str(data), "--preset", "quick", "--train-size", "32",
                "--epochs", "1", "--batch-size", "16", "--max-length", "16", "--validation-size", "20",
                "--test-size", "40", "--db", str(db)]


def env_with(faults: str | None = None, marker: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PEFTBENCH_TEST_FAULTS", None)
    if faults:
        env["PEFTBENCH_TEST_FAULTS"] = faults
    if marker:
        env["PEFTBENCH_TEST_MARKER"] = marker  # inherited by the forkserver and every trial process
    return env


def start(args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "peftbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peftbench.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


def rows(db: Path) -> dict[str, dict]:
    """method -> its row, read like any other reader would (the driver may be writing)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            found = conn.execute("SELECT method, trial_id, status, error, attempts, started_at, finished_at, "
                                 "record_json FROM trials").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return {}
    keys = ("trial_id", "status", "error", "attempts", "started_at", "finished_at", "record_json")
    return {r[0]: dict(zip(keys, r[1:])) for r in found}


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the study ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def trial_processes(marker: str) -> list[psutil.Process]:
    """Live trial processes of this test only (named by isolation.child_main, marked through env)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "peftbench-trial" and proc.status() != psutil.STATUS_ZOMBIE \
                    and proc.environ().get("PEFTBENCH_TEST_MARKER") == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("PEFTBENCH_TEST_MARKER") == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_ctrl_c_and_a_killed_driver_lose_nothing(study):
    """Ctrl-C stores the running trial as cancelled and exits non-zero; a second study on the same store
    is refused while the first runs; SIGKILL of the driver keeps every finished trial, leaves no trial
    process behind, and the next run finishes the study without re-running anything finished."""
    db, args = study
    args = [*args, "--methods", "Full,BitFit,LoRA-r4"]
    marker = uuid.uuid4().hex

    # 1. Full hangs; while it runs, a second study on the same store is refused; then Ctrl-C.
    first = start(args, env_with("Full=hang", marker))
    wait_for(lambda: trial_processes(marker) and rows(db).get("Full", {}).get("status") == "running", first,
             "the first trial ran")
    second = run(args, env_with())
    assert second.returncode != 0
    assert "in use by another study" in one_error_line(second.stderr)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0, err
    after_ctrl_c = rows(db)
    assert after_ctrl_c["Full"]["status"] == "cancelled" and "cancelled" in after_ctrl_c["Full"]["error"]
    assert set(after_ctrl_c) == {"Full"}  # the trials not yet started stay unstarted
    deadline = time.time() + 15
    while trial_processes(marker) and time.time() < deadline:
        time.sleep(0.2)
    assert not trial_processes(marker), "a cancelled trial process is still running"

    # 2. Full and BitFit finish; LoRA-r4 hangs: SIGKILL the driver while it runs.
    driver = start(args, env_with("LoRA-r4=hang", marker))
    wait_for(lambda: rows(db).get("LoRA-r4", {}).get("status") == "running" and trial_processes(marker),
             driver, "two trials finished and the third ran")
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=60)
    finished = {m: r for m, r in rows(db).items() if r["status"] == "ok"}
    assert set(finished) == {"Full", "BitFit"}
    assert finished["Full"]["attempts"] == 2 and finished["BitFit"]["attempts"] == 1
    deadline = time.time() + 15  # trial processes watch their driver (once a second) and exit
    while marked_processes(marker) and time.time() < deadline:
        time.sleep(0.2)
    left = marked_processes(marker)
    assert not left, f"processes outlived the killed driver: {[(p.pid, p.name()) for p in left]}"

    # 3. The same command finishes the study and runs only what is not finished (its main() in this process).
    again = run_cli_main(*args, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 trials ok, 0 failed, 0 cancelled, 2 already in the store" in again.stderr
    final = rows(db)
    assert {m: r["status"] for m, r in final.items()} == {"Full": "ok", "BitFit": "ok", "LoRA-r4": "ok"}
    for method, row in finished.items():  # untouched: same run, same time, same record
        assert final[method] == row, method


def test_crash_hang_and_death_are_failed_with_reasons_then_retried(study):
    """A raising, a hanging (trial timeout) and a dying trial are stored as failed with their reasons
    while the healthy one finishes; --retry-failed re-runs only failed trials; --retries retries them."""
    db, args = study
    # The hanging trial costs the whole timeout; a healthy tiny trial takes a few seconds (20 s leaves room
    # for a busy machine: the healthy ones must finish inside it too).
    args = [*args, "--methods", "BitFit,LoRA-r4,IA3,Full", "--workers", "2", "--trial-timeout", "20"]
    first = run(args, env_with("LoRA-r4=crash,IA3=hang,Full=die"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "1 trials ok, 3 failed" in first.stderr
    stored = rows(db)
    assert stored["BitFit"]["status"] == "ok"
    assert stored["LoRA-r4"]["status"] == "failed" and "injected crash" in stored["LoRA-r4"]["error"]
    assert stored["IA3"]["status"] == "failed" and "trial timeout" in stored["IA3"]["error"]
    assert stored["Full"]["status"] == "failed" and "exited with code 9" in stored["Full"]["error"]
    assert all(r["attempts"] == 1 for r in stored.values())
    listing = run_cli_main("results", "--failed", "--db", db)
    assert "injected crash" in listing.stdout and "trial timeout" in listing.stdout

    # IA3 no longer hangs; LoRA-r4 and Full still fail, and are retried once more each.
    retried = run([*args, "--retry-failed", "--retries", "1"], env_with("LoRA-r4=crash,Full=die"))
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert "1 trials ok, 2 failed, 0 cancelled, 1 already in the store" in retried.stderr
    after = rows(db)
    assert after["BitFit"] == stored["BitFit"]  # finished: not re-run
    assert after["IA3"]["status"] == "ok" and after["IA3"]["attempts"] == 2
    for method in ("LoRA-r4", "Full"):  # the --retry-failed attempt, then one retry
        assert after[method]["status"] == "failed" and after[method]["attempts"] == 3, method


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stores_that_are_not_ours_are_left_alone(study, tmp_path):
    """A non-SQLite file and someone else's SQLite database given as --db are refused, byte-identical (the
    CLI's main() in this process: the refusal comes before any trial)."""
    _, args = study
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("my precious notes\n" * 100)
    foreign = tmp_path / "customers.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.close()
    cases = ((not_sqlite, "is not a peftbench store"), (foreign, "is an SQLite file but not a peftbench store"))
    before = {path: digest(path) for path, _ in cases}
    for path, phrase in cases:
        proc = run_cli_main(*args, "--methods", "BitFit", "--db", path, check=False)
        assert proc.returncode != 0
        assert phrase in one_error_line(proc.stderr)
        assert digest(path) == before[path]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]
