"""The Ray backend on a real (one-node, loopback-only) Ray cluster: same records as the local executor, the
Ray run being a race (--race) whose first round is the local run's trials and whose second round runs the
two tied configurations' next seeds on the cluster.

The cluster is started with `ray start --head --block` in its own temp dir and stopped at the end; the
study runs through the real CLI with `--backend ray --address 127.0.0.1:PORT`, as a person would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import make_rows, write_csv

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'peftbench[ray]')")

# Ray turns 127.0.0.1 into the machine's network address unless told it is not clustering across
# machines; keep every socket of this test on loopback.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Full learns the tiny task (accuracy 1.0) at either rate, BitFit does not: a race drops BitFit after round 1
# and runs a second round for the two Full configurations, tied.
METHODS = "full:lr=1e-2,full:lr=1.2e-2,bitfit:lr=3e-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node on 127.0.0.1 with 2 CPUs; yields (address, env, temp_dir). Shut down at the end."""
    temp_dir = tempfile.mkdtemp(prefix="pbray-", dir="/tmp")  # short: Ray's unix sockets live here
    port = free_port()
    env = {**os.environ, **LOOPBACK_ENV, "OMP_NUM_THREADS": "1"}
    ports = {flag: str(free_port()) for flag in (
        "--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port", "--object-manager-port")}
    log_path = Path(temp_dir) / "ray-start.log"
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
           "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard",
           "false", "--temp-dir", temp_dir, "--object-store-memory", str(100 * 1024 * 1024),
           "--disable-usage-stats", *[x for kv in ports.items() for x in kv]]
    with open(log_path, "w") as log:
        head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in log_path.read_text():
            if head.poll() is not None or time.time() > deadline:
                pytest.fail(f"ray start did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env, temp_dir
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        deadline = time.time() + 30
        while processes_mentioning(temp_dir) and time.time() < deadline:
            time.sleep(0.5)
        leftovers = processes_mentioning(temp_dir)
        for proc in leftovers:  # only processes of this cluster: their command line names its temp dir
            proc.kill()
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leftovers, f"Ray processes outlived the cluster: {[p.pid for p in leftovers]}"


def start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "peftbench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or {**os.environ, "OMP_NUM_THREADS": "1"})


def stored(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT trial_id, method, status, error, record_json FROM trials").fetchall()
    return {tid: {"method": m, "status": st, "error": err, **json.loads(rec or "{}")}
            for tid, m, st, err, rec in rows}


def test_ray_cluster_gives_the_records_of_the_local_executor(ray_cluster, tiny_model, tmp_path):
    address, env, temp_dir = ray_cluster
    data = write_csv(tmp_path / "reviews.csv", make_rows(150))
    common = ["run", "--model", tiny_model, "--dataset", str(data), "--no-ood", "--preset", "quick",
              "--methods", METHODS, "--train-size", "96", "--epochs", "3", "--batch-size", "8",
              "--max-length", "16"]
    local_db, ray_db = tmp_path / "local.db", tmp_path / "ray.db"

    # Both at once: the Ray run spends much of its time waiting on the cluster. The Ray run is a race: its
    # first round is the local run's trials (seed 0); Full's planted gap over BitFit sends BitFit out, and the
    # two Full configurations, tied, run seed 1 in round 2 on the cluster.
    on_ray = start(*common, "--db", str(ray_db), "--backend", "ray", "--address", address,
                   "--cpus-per-trial", "2", "--race", env=env)
    local = start(*common, "--db", str(local_db))
    too_big_db = tmp_path / "never.db"  # a trial no node can hold is refused, and leaves no store
    too_big = start(*common, "--db", str(too_big_db), "--backend", "ray", "--address", address,
                    "--cpus-per-trial", "64", env=env)
    outputs, errors = {}, {}
    for name, proc in (("ray", on_ray), ("local", local)):
        outputs[name], errors[name] = proc.communicate(timeout=600)
        assert proc.returncode == 0, errors[name][-3000:]
    assert "race answer (scenario balanced (default), chosen on validation): Full:lr=" in outputs["ray"]
    assert "raced out: BitFit:lr=0.3 (round 1" in outputs["ray"]  # (round 1, collapsed): it learns nothing here
    flat = " ".join(outputs["ray"].split())  # the console wraps long lines
    assert "trials: 3 + 2 = 5" in flat and "stopped after round 2" in flat
    assert "race round 2: 2 contender(s), seed 1" in " ".join(errors["ray"].split())  # progress goes to stderr
    _, err = too_big.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    assert too_big.returncode != 0 and len(lines) == 1, err[-3000:]
    assert "no node of the Ray cluster has 64 CPUs and 0 GPUs for one trial" in lines[0]
    assert not too_big_db.exists()

    ray_records, local_records = stored(ray_db), stored(local_db)
    assert set(local_records) <= set(ray_records) and len(local_records) == 3  # same specs, same trial ids
    second = [r for tid, r in ray_records.items() if tid not in local_records]
    assert sorted((r["method"], r["seed"], r["status"]) for r in second) == [
        ("Full:lr=0.01", 1, "ok"), ("Full:lr=0.012", 1, "ok")]  # round 2, on the cluster
    for tid, expected in local_records.items():
        got = ray_records[tid]
        assert got["status"] == expected["status"] == "ok", (got.get("error"), expected.get("error"))
        assert got["seed"] == expected["seed"]
        # CPU training is deterministic per seed: the cluster trains exactly what the local executor did
        assert got["accuracy"] == expected["accuracy"], got["method"]
        assert got["val_accuracy"] == expected["val_accuracy"], got["method"]
        assert got["final_train_loss"] == pytest.approx(expected["final_train_loss"], rel=1e-5)
        assert got["peak_rss_mb"] > 0 and got["trainable_params"] == expected["trainable_params"]
    # A non-default learning rate is part of the name ("Full:lr=0.01"); the family is before the colon.
    by_method = {r["method"].split(":")[0]: r["accuracy"] for r in local_records.values()}
    assert by_method["Full"] > by_method["BitFit"]  # the comparison is not between two coin flips

    # The trials really were Ray tasks on the cluster (Ray logs each task's name in its worker's log).
    logs = "".join(p.read_text(errors="replace") for p in Path(temp_dir).glob("session_*/logs/worker-*.out"))
    assert ":task_name:peftbench-trial-Full" in logs and ":task_name:peftbench-trial-BitFit" in logs


def test_ray_task_failures_become_failed_outcomes(ray_cluster, tiny_data_spec, tiny_train_spec, monkeypatch):
    """A worker that dies under a trial, and a trial process that dies inside its task, are failed
    outcomes with a reason (Ray does not retry them behind our back)."""
    from peftbench.config.spec import TrialSpec
    from peftbench.execute.ray_backend import RayExecutor, run_isolated_trial
    from peftbench.methods import parse_method

    address, _, _ = ray_cluster
    spec = TrialSpec(study="t", method=parse_method("BitFit"), data=tiny_data_spec, train=tiny_train_spec)
    from ray._private import ray_constants

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # read at import: LOOPBACK_ENV's effect
    try:
        ray.init(address=address, log_to_driver=False)

        def kill_worker():
            os._exit(1)

        crashed = ray.remote(max_retries=0)(kill_worker).remote()
        outcome = RayExecutor._outcome(crashed, spec)
        assert outcome.status == "failed" and "Ray worker running the trial died" in outcome.error

        def raise_inside():
            raise MemoryError("no room")

        raised = ray.remote(max_retries=0)(raise_inside).remote()
        outcome = RayExecutor._outcome(raised, spec)
        assert outcome.status == "failed" and "MemoryError: no room" in outcome.error

        # The trial process itself dies (os._exit in the test fault hook) inside the Ray task.
        died = ray.remote(num_cpus=1, max_retries=0, runtime_env={"env_vars": {"PEFTBENCH_TEST_FAULTS": "BitFit=die"}})(
            run_isolated_trial).remote(spec.to_dict(), None, 60, 1)
        outcome = RayExecutor._outcome(died, spec)
        assert outcome.status == "failed" and "exited with code 9" in outcome.error
    finally:
        ray.shutdown()
