"""Records written by earlier versions, brought to today's declaration (record/fields.py).

Version 2 -> 3: a record stored some figures twice, under their own name and under the role its task
gives them (a generate trial's exact match also as `accuracy`, its time to first token as `latency_*_ms`,
its decode speed as `throughput_per_s`, merged ones alike). Version 3 stores each figure once, under its
own name; the role copies are dropped and the per-perturbation figures take the source's name. The
roles come from the record's task (`roles_of(task name)`: tasks/), so no task is named here. Every figure's value is kept."""

from __future__ import annotations

from typing import Any, Callable

from peftbench.record.schema import RECORD_VERSION

_COPIED_UNDER = ("", "val_", "merged_", "ood_")  # prefixes under which a role's copy was stored


def upgrade_record(record: dict[str, Any], roles_of: Callable[[str], dict[str, str]]) -> dict[str, Any]:
    """The record at RECORD_VERSION (a new dict; the argument is left as it was). `roles_of(task)`: the
    task's role -> field map ({} for a task this peftbench does not know)."""
    out = dict(record)
    version = int(out.get("record_version") or 1)
    roles = roles_of(out["task"]) if out.get("task") else {}
    if version < 3:
        for role, source in roles.items():
            for prefix in _COPIED_UNDER:
                if f"{prefix}{role}" in out:  # a copy (dropped), or the figure's only place (renamed)
                    value = out.pop(f"{prefix}{role}")
                    out.setdefault(f"{prefix}{source}", value)
            for key in [k for k in out if k.startswith(("perturbed_", "clean_subset_")) and k.endswith(f"_{role}")]:
                out[key[: -len(role)] + source] = out.pop(key)
    if out:  # an empty record (a failed trial's placeholder) stays empty
        out["record_version"] = max(version, RECORD_VERSION)
    return out
