"""A trial's setup: what must be equal for two trials to be compared or averaged (model, data and its
split, max length, epochs, batch size, the evaluated test rows). The learning rate is part of the method's
name, the rest of a trial's identity is its spec (config/spec.py)."""

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
    return parts


def _provenance(record: dict[str, Any] | None) -> dict[str, Any]:
    prov = (record or {}).get("provenance")
    return prov if isinstance(prov, dict) else {}


def setup_key(spec_dict: dict[str, Any], record: dict[str, Any] | None = None) -> str:
    """A short hash of the setup: model, data source (and its columns), the split's content hash, max
    length, epochs, batch size, and the evaluated test rows. Trials are only averaged or compared within
    one setup. (The learning rate is part of the method's name.)"""
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
    return " · ".join(parts)
