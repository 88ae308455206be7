"""Records written by earlier versions, brought to today's declaration (record/fields.py).

Version 2 -> 3: a generate record stored its exact match also under `accuracy` (and `val_accuracy`,
`ood_accuracy`, `perturbed_<kind>_accuracy`, `clean_subset_accuracy`), its time to first token under
`latency_*_ms` and its decode speed under `throughput_per_s` (merged ones alike). Version 3 stores each figure
once, under its own name; the aliases are dropped (they were copies) and the perturbed figures renamed. A
classifier's record changes only its version. Every figure's value is kept."""

from __future__ import annotations

import re
from typing import Any

from peftbench.record.schema import RECORD_VERSION

_GENERATE_ALIASES = ("accuracy", "val_accuracy", "ood_accuracy", "throughput_per_s", "merged_throughput_per_s")
_LATENCY_ALIAS = re.compile(r"^(merged_)?latency_(p25|p50|p75|p95|mean)_ms$")
_PERTURBED = re.compile(r"^perturbed_([a-z0-9_]+)_accuracy$")


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record at RECORD_VERSION (a new dict; the argument is left as it was)."""
    out = dict(record)
    version = int(out.get("record_version") or 1)
    if version < 3 and out.get("task") == "generate":
        for key in list(out):
            if key in _GENERATE_ALIASES or _LATENCY_ALIAS.match(key):
                del out[key]
            elif _PERTURBED.match(key):
                out[f"perturbed_{_PERTURBED.match(key).group(1)}_exact_match"] = out.pop(key)
            elif key == "clean_subset_accuracy":
                out["clean_subset_exact_match"] = out.pop(key)
    if out:  # an empty record (a failed trial's placeholder) stays empty
        out["record_version"] = max(version, RECORD_VERSION)
    return out
