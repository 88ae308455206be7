"""Log trials to an experiment tracker (MLflow) as they finish, or a finished store afterwards.

One MLflow run per trial, in the experiment "peftbench/<study>". Each run carries the trial id as a tag and
a hash of the record it logged, so a re-run study or a second export finds the run and adds nothing; a
trial whose record changed (--force, a retried failure) updates its own run. MLflow is an optional extra
(`pip install 'peftbench[mlflow]'`) and is imported only here, only when tracking is asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from peftbench.errors import PeftbenchError

TRACKERS = ("mlflow",)
EXPERIMENT_PREFIX = "peftbench/"
REACH_TIMEOUT_S = 3.0
_TAG_FIELDS = ("trial_id", "study", "method", "family", "model", "device", "collapse_reason", "timing_note")
_PARAM_FIELDS = ("method", "family", "learning_rate", "seed", "train_size", "epochs", "batch_size", "model")
_MAX_TAG = 5000


class Tracker(Protocol):
    """What the runner calls after it stores each outcome."""

    def log(self, spec: Any, record: dict[str, Any], status: str) -> None:
        ...


def default_tracking_uri() -> str:
    """A local `mlruns/` folder in the working directory, as a file URI."""
    return (Path.cwd() / "mlruns").as_uri()


def make_trackers(track: str | None, tracking_uri: str | None = None) -> list[Tracker]:
    """The trackers for --track (none when not asked). Fails before any study starts: an unknown name,
    MLflow not installed, or a tracking server that cannot be reached is one PeftbenchError line."""
    if track is None:
        if tracking_uri is not None:
            raise PeftbenchError("--tracking-uri needs --track mlflow")
        return []
    if track not in TRACKERS:
        raise PeftbenchError(f"unknown tracker {track!r} (choose from {', '.join(TRACKERS)})")
    return [MlflowTracker(tracking_uri)]


def import_mlflow():
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise PeftbenchError(f"MLflow tracking needs the mlflow extra ({exc}); "
                             "install it with: pip install 'peftbench[mlflow]'") from None
    return mlflow, MlflowClient


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """An http(s) tracking server must answer a TCP connection within `timeout` seconds; other URIs
    (file, sqlite, databricks) are left to MLflow."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PeftbenchError(f"cannot reach the MLflow tracking server at {uri} ({reason}); "
                             "start it, or give another --tracking-uri") from None


def numeric_metrics(record: dict[str, Any]) -> dict[str, float]:
    """Every finite number at the top level of a record. Booleans are tags; strings (the per-row
    predictions and labels among them) and nested provenance are not metrics."""
    out = {}
    for key, value in record.items():
        is_number = isinstance(value, (int, float)) or hasattr(value, "dtype")  # numpy scalars too
        if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b" or not is_number:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[key] = number
    return out


def record_hash(record: dict[str, Any]) -> str:
    from peftbench.store.db import json_default

    text = json.dumps(record, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_params(spec: Any, record: dict[str, Any]) -> dict[str, str]:
    """The method's options and learning rates, the trial's sizes and its configuration key: what MLflow
    compares runs by."""
    params = {k: record[k] for k in _PARAM_FIELDS if record.get(k) is not None}
    if spec is not None:
        params.update({f"option.{k}": v for k, v in spec.method.options.items()})
        params.setdefault("learning_rate", spec.method.learning_rate)
        # the configuration's key (config/identity.py): runs that differ in anything that changes a
        # number (tuned or not, a default rate that changed, device, precision) never share it
        from peftbench.config.identity import config_key, configuration

        params["config"] = config_key(configuration(spec.to_dict(), record))
        params.setdefault("head_learning_rate", spec.method.head_learning_rate)
        params["tune_group"] = spec.tune_group
        params["dataset"] = spec.data.source
        params["max_length"] = spec.data.max_length
        params.setdefault("epochs", spec.train.epochs)
        params.setdefault("batch_size", spec.train.batch_size)
    return {k: str(v)[:_MAX_TAG] for k, v in params.items() if v is not None}


def run_tags(record: dict[str, Any], status: str) -> dict[str, str]:
    """Provenance and identity: trial id, status, collapse, versions, git hash, data split hash."""
    tags: dict[str, Any] = {k: record.get(k) for k in _TAG_FIELDS}
    tags.update(status=status, collapsed=record.get("collapsed"), record_hash=record_hash(record))
    for key, value in record.items():  # other booleans (can_merge, timing_contended ...) are tags too
        if isinstance(value, bool):
            tags.setdefault(key, value)
    prov = record.get("provenance") or {}
    for pkg, version in (prov.get("versions") or {}).items():
        tags[f"version.{pkg}"] = version
    tags.update(git_hash=prov.get("git_hash"), git_dirty=prov.get("git_dirty"),
                split_hash=(prov.get("data") or {}).get("split_hash"))
    if record.get("error"):
        tags["error"] = str(record["error"]).strip().splitlines()[0]
    return {k: str(v)[:_MAX_TAG] for k, v in tags.items() if v is not None}


class MlflowTracker:
    """Logs each trial as one MLflow run through MlflowClient (no global active run in the caller's
    process, so a notebook's own MLflow runs are left alone)."""

    name = "mlflow"

    def __init__(self, tracking_uri: str | None = None):
        self.uri = tracking_uri or default_tracking_uri()
        _mlflow, self._client_cls = import_mlflow()
        check_reachable(self.uri)
        self._client = None  # made at the first trial, so a study that cannot start writes nothing
        self._experiments: dict[str, str] = {}

    @property
    def client(self):
        if self._client is None:
            if urlparse(self.uri).scheme in ("", "file"):
                # MLflow 3.x keeps its file store (what skinny supports without a database) behind this
                # opt-in; a file URI given to us is that opt-in.
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self._client = self._client_cls(tracking_uri=self.uri)
        return self._client

    def experiment_id(self, study: str) -> str:
        name = f"{EXPERIMENT_PREFIX}{study}"
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            self._experiments[name] = found.experiment_id if found else self.client.create_experiment(name)
        return self._experiments[name]

    def find_run(self, experiment_id: str, trial_id: str):
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.trial_id = '{trial_id}'",
                                       max_results=1)
        return runs[0] if runs else None

    def log(self, spec: Any, record: dict[str, Any], status: str) -> None:
        """One run per trial id: created once, updated only when the record changed."""
        from mlflow.entities import Metric, Param, RunTag

        record = {**record, "status": status}
        trial_id = record.get("trial_id") or spec.trial_id
        record["trial_id"] = trial_id
        study = record.get("study") or spec.study
        experiment_id = self.experiment_id(study)
        tags = run_tags(record, status)
        existing = self.find_run(experiment_id, trial_id)
        if existing is not None and existing.data.tags.get("record_hash") == tags["record_hash"]:
            return
        if existing is None:
            name = f"{record.get('method')} seed{record.get('seed')} n{record.get('train_size')}"
            run_id = self.client.create_run(experiment_id, run_name=name, tags={"trial_id": trial_id}).info.run_id
            params = run_params(spec, record)
        else:
            run_id = existing.info.run_id
            params = {k: v for k, v in run_params(spec, record).items() if k not in existing.data.params}
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in numeric_metrics(record).items()]
        params_list = [Param(k, v) for k, v in params.items()]
        tags_list = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, max(len(metrics), len(params_list), len(tags_list)), 100):
            self.client.log_batch(run_id, metrics=metrics[i:i + 100], params=params_list[i:i + 100],
                                  tags=tags_list[i:i + 100])
        self.client.set_terminated(run_id, "FINISHED" if status == "ok" else "FAILED")


def export_store(db: Path, tracking_uri: str | None, study: str | None = None,
                 include_failed: bool = False) -> tuple[int, str]:
    """Log every trial of a finished store (those already logged with the same record are skipped).
    Returns (trials seen, tracking URI)."""
    from peftbench.config.spec import TrialSpec
    from peftbench.store.db import Store

    tracker = MlflowTracker(tracking_uri)  # checks the extra and the server before reading anything
    with Store(db, create=False) as store:
        rows = [r for r in store.rows(study, None if include_failed else ("ok",)) if r["status"] != "running"]
    if not rows:
        raise PeftbenchError(f"no {'' if include_failed else 'finished '}trials in {db} to log")
    for row in rows:
        record = json.loads(row["record_json"]) if row["record_json"] else {}
        tracker.log(TrialSpec.from_dict(json.loads(row["spec_json"])), record, row["status"])
    return len(rows), tracker.uri

