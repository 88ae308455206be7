"""A configuration's identity: everything that changes a trial's numbers except its seed.

Two trials are seeds of one configuration only when their keys agree: the setup (config/setup.py), the
method (name, family, options), the learning rates actually used (also when they are the family's default:
a default that changed between two runs makes two configurations), the train size, the optimiser settings,
the data options (OOD set, perturbations, task, template) and whether the trial is a tuning candidate or a
tuned choice. How latency is timed (runs, batches) is not part of it: a trial repeated with other timing
settings is the same configuration, refused rather than counted twice (store/db.py).

The display label is the method's name plus only what tells it apart from another configuration of the
same name in the same study and setup, e.g. `LoRA-r8 · lr 0.002`; a tuned choice is `LoRA-r8 (tuned)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from peftbench.config.setup import _setup_parts
from peftbench.config.spec import _LATER_OPTIONS, DataSpec, TrainSpec

TUNED_SUFFIX = " (tuned)"
_TIMING_ONLY = ("latency_runs", "throughput_batches", "device")  # device: its resolved type is in the setup
_SHORT = {"learning_rate": "lr", "head_learning_rate": "head lr", "train_size": "n=", "tuned": "tuning"}


def _defaults(cls) -> dict[str, Any]:
    """A spec part's defaults: an older stored spec that lacks a field later added at its default reads
    as the same configuration as a new one."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _rate(record: dict[str, Any], method: dict[str, Any], key: str) -> Any:
    value = record.get(key) if key in record else method.get(key)
    return None if value is None else float(value)


def configuration(spec: dict[str, Any], record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every part of a trial's configuration (JSON-able): see the module docstring."""
    record = record or {}
    method = spec.get("method") or {}
    data = {**_defaults(DataSpec), **(spec.get("data") or {})}
    train = {**_defaults(TrainSpec), **(spec.get("train") or {})}
    options = {**_LATER_OPTIONS.get(method.get("family"), {}), **(method.get("options") or {})}
    parts = {"setup": _setup_parts(spec, record),
             "method": method.get("name"), "family": method.get("family"),
             "options": dict(sorted(options.items())),
             "learning_rate": _rate(record, method, "learning_rate"),
             "head_learning_rate": _rate(record, method, "head_learning_rate"),
             "train_size": train.get("train_size"),
             "train": {k: v for k, v in sorted(train.items()) if k not in (*_TIMING_ONLY, "train_size")},
             "data": {k: v for k, v in sorted(data.items())}}
    if spec.get("tune_group"):
        parts["tune_group"] = spec["tune_group"]  # a candidate: its own configuration until it is chosen
    return parts


def tuned_configuration(candidate: dict[str, Any], budget: Any = None) -> dict[str, Any]:
    """The configuration of a tuned choice: the tuned method and its search, whichever rate it chose."""
    rates = ("learning_rate", "head_learning_rate", "tune_group")
    out = {k: v for k, v in candidate.items() if k not in rates}
    return {**out, "method": candidate.get("tune_group") or candidate.get("method"),
            "tuned": str(budget) if budget else True}


def method_key(parts: dict[str, Any]) -> str:
    """The method's part of a configuration only (name, family, options, learning rates, tuned or not):
    what a ranked configuration and its data-efficiency curve (another study, other sizes) share."""
    keep = {k: parts.get(k) for k in ("method", "family", "options", "learning_rate", "head_learning_rate")}
    return config_key({**keep, "tuned": bool(parts.get("tuned"))})


def config_key(parts: dict[str, Any]) -> str:
    """A short hash of a configuration's parts."""
    canonical = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "options":
            out.update(_flat(v, f"{prefix}{k}." if prefix or k not in ("setup", "train", "data") else ""))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _text(key: str, value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif value is None:
        value = "default (not recorded)" if key in ("learning_rate", "head_learning_rate") else "none"
    short = _SHORT.get(key, key.split(".")[-1].replace("_", " "))
    return f"{short}{value}" if short.endswith("=") else f"{short} {value}"


def distinguishing_labels(names: list[str], configs: list[dict[str, Any]]) -> list[str]:
    """Per row, `name` plus ' · ' and only the parts in which its configuration differs from the other
    configurations of the same name among `configs` (rows of one study and setup)."""
    flats = [_flat(c) for c in configs]
    keys = [config_key(c) for c in configs]
    labels = list(names)
    for name in set(names):
        rows = [i for i, n in enumerate(names) if n == name]
        distinct = {keys[i]: flats[i] for i in rows}
        if len(distinct) < 2:
            continue
        order = list(_SHORT)
        fields = sorted({f for fl in distinct.values() for f in fl},
                        key=lambda f: (order.index(f) if f in order else len(order), f))
        differing = [f for f in fields if len({json.dumps(fl.get(f), sort_keys=True, default=str)
                                                for fl in distinct.values()}) > 1]
        for i in rows:
            labels[i] = " · ".join([name] + [_text(f, flats[i].get(f)) for f in differing])
    return labels


def label_configurations(frame, base: str = "method_name", only=None):
    """`frame` (one row per trial, columns study, setup, `base`, configuration) with `method` set to each
    configuration's label within its (study, setup). The train size is left out of the label: outside the
    data-efficiency study it is part of the setup, inside it is the curve's axis (one label across sizes).
    `only`: a boolean mask of the rows to label (the others keep their `method`)."""
    if frame.empty or "configuration" not in frame:
        return frame
    frame = frame.copy()
    mask = only if only is not None else [True] * len(frame)
    groups: dict[tuple, list[int]] = {}
    studies = frame["study"] if "study" in frame else [None] * len(frame)
    setups = frame["setup"] if "setup" in frame else [None] * len(frame)
    for pos, (keep, study, setup) in enumerate(zip(mask, studies, setups)):
        if keep:
            groups.setdefault((study, setup), []).append(pos)
    method = list(frame["method"])
    bases = list(frame[base])
    confs = [{k: v for k, v in c.items() if k != "train_size"} for c in frame["configuration"]]
    for rows in groups.values():
        labels = distinguishing_labels([str(bases[i]) for i in rows], [confs[i] for i in rows])
        for i, label in zip(rows, labels):
            method[i] = label
    frame["method"] = method
    return frame
