"""A trial record's identity and provenance, written before anything is measured, and the record of a trial
that failed."""

from __future__ import annotations

from typing import Any

import torch

from peftbench.config.spec import TrialSpec
from peftbench.measure.provenance import provenance
from peftbench.record.schema import RECORD_VERSION


def start_record(spec: TrialSpec, data, device: torch.device, baseline_rss: float) -> dict[str, Any]:
    """The record's identity and provenance, before anything is measured."""
    record: dict[str, Any] = {"record_version": RECORD_VERSION, "trial_id": spec.trial_id,
                              "study": spec.study, "method": spec.method.name, "family": spec.method.family,
                              "seed": spec.seed, "train_size": spec.train.train_size,
                              "epochs": spec.train.epochs, "batch_size": spec.train.batch_size,
                              "learning_rate": spec.method.learning_rate, "model": spec.model,
                              "task": spec.data.task, "baseline_rss_mb": baseline_rss, "device": str(device)}
    record["provenance"] = {**provenance(device), "data": data.provenance}
    if "truncation" in data.provenance:  # what max_length cut, per split (data/truncation.py)
        record["truncation"] = data.provenance["truncation"]
    return record


def failure_record(spec: TrialSpec, status: str, error: str) -> dict[str, Any]:
    return {"record_version": RECORD_VERSION, "trial_id": spec.trial_id, "study": spec.study,
            "method": spec.method.name, "family": spec.method.family, "seed": spec.seed,
            "train_size": spec.train.train_size, "status": status, "error": error}

