"""A trial's setup: what must be equal for two methods' trials to be compared at all (model and its
revision, data and its split, max length, epochs, batch size, the evaluated test rows, device type,
precision, 4-bit and gradient checkpointing, and the train size outside the studies whose axis it is).
A configuration inside a setup (method, learning rates, tuned or not) is config/identity.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def _setup_parts(spec: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    record = record or {}
    data = spec.get("data") or {}
    train = spec.get("train") or {}
    prov = _provenance(record).get("data") or {}
    split_hash = prov.get("split_hash")
    parts: dict[str, Any] = {
        "model": spec.get("model"), "data": data.get("source"), "text_column": data.get("text_column"),
        "label_column": data.get("label_column"), "max_length": data.get("max_length"),
        "epochs": train.get("epochs"), "batch_size": train.get("batch_size"),
    }
    if split_hash:
        parts["split_hash"] = split_hash
    else:  # a record without provenance (a failed trial): the split as the spec asked for it
        parts["split"] = [data.get("split_seed"), data.get("validation_size"), data.get("test_size")]
    if spec.get("eval_size"):
        parts["eval_size"] = spec["eval_size"]  # evaluated on the first N test rows: other rows, other setup
    # Costs and numbers move with the hardware and precision: another device type or precision is another
    # setup (only set where it differs from the plain run, so the labels stay short).
    parts["device"] = device_type(spec, record)
    for flag in ("bf16", "load_in_4bit", "gradient_checkpointing"):
        if train.get(flag):
            parts[flag] = True
    revision = model_revision(record)
    if revision:
        parts["model_revision"] = revision
    if spec.get("study") not in SIZE_AXIS_STUDIES:  # methods ranked at two train sizes are not comparable
        parts["train_size"] = train.get("train_size")
    return parts


# Studies whose axis is the train size (curves by method and size): there it is part of the configuration,
# elsewhere of the setup. analysis/curves.py's DATA_EFFICIENCY_STUDY must be listed here.
SIZE_AXIS_STUDIES = ("data-efficiency",)


def device_type(spec: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """cpu or cuda: the device the record says the trial ran on, else the spec's, "auto" resolved here."""
    ran = (record or {}).get("device")
    if isinstance(ran, str) and ran:
        return ran.split(":")[0]
    asked = (spec.get("train") or {}).get("device") or "auto"
    if asked != "auto":
        return asked
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def model_revision(record: dict[str, Any] | None) -> str | None:
    """The model's revision (commit) where provenance records one."""
    prov = _provenance(record)
    model = prov.get("model")
    rev = prov.get("model_revision") or (model.get("revision") if isinstance(model, dict) else None)
    return str(rev) if rev else None


def _provenance(record: dict[str, Any] | None) -> dict[str, Any]:
    prov = (record or {}).get("provenance")
    return prov if isinstance(prov, dict) else {}


def setup_key(spec_dict: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """A short hash of the setup (the module's docstring lists what it holds). Trials are only compared
    within one setup; within it, config/identity.py says which are seeds of one configuration."""
    canonical = json.dumps(_setup_parts(spec_dict, record), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def _short(name: Any) -> str:
    text = str(name)
    return Path(text).name if ("/" in text and Path(text).exists()) or text.startswith("/") else text


def setup_label(spec_dict: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """The setup as people read it, e.g. 'embedded · Rotten Tomatoes … · split 1a2b3c4d · max_len 128 ·
    2 epochs · batch 16'."""
    p = _setup_parts(spec_dict, record)
    prov = _provenance(record)
    origin = (prov.get("data") or {}).get("dataset") or _short(p["data"])
    split = p.get("split_hash", "")[:8] or "seed {} val {} test {}".format(*p["split"])
    epochs = p["epochs"]
    parts = [_short(p["model"]), str(origin), f"split {split}", f"max_len {p['max_length']}",
             f"{epochs} epoch{'s' if epochs != 1 else ''}", f"batch {p['batch_size']}"]
    if p.get("eval_size"):
        parts.append(f"first {p['eval_size']} test rows")
    if p.get("train_size") is not None:
        parts.append(f"train {p['train_size']}")
    parts.append(p["device"])
    parts += [text for flag, text in (("bf16", "bf16"), ("load_in_4bit", "4-bit"),
                                      ("gradient_checkpointing", "grad ckpt")) if p.get(flag)]
    if p.get("model_revision"):
        parts.append(f"rev {p['model_revision'][:8]}")
    return " · ".join(parts)
