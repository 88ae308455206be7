"""The trial record, declared: every field a trial stores, with its unit, the split it reads and what it
means, grouped as the six dimensions group them.

A record is stored flat (one JSON object per trial in the store); `TrialRecord.from_flat` checks every key
against this declaration and splits it into one small dataclass per group, so a field that no one declared
cannot slip into the store, and `peftbench fields` lists them all. Figures are stored under their own names
only (no aliases): a task's `roles` (tasks/) say which field the tables read as accuracy or latency.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from peftbench.record.fields import GROUPS, Field

RECORD_VERSION = 3  # 3: typed and alias-free (a generate record stores exact match and TTFT only by name)


def _pattern(name: str) -> re.Pattern:
    """`perturbed_<kind>_accuracy` matches perturbed_typo_accuracy; plain names match only themselves."""
    return re.compile("^" + re.sub(r"<[a-z]+>", "[a-z0-9_]+", re.escape(name).replace(r"\<", "<")
                                   .replace(r"\>", ">")) + "$")


_EXACT: dict[str, tuple[str, Field]] = {}
_PATTERNS: list[tuple[re.Pattern, str, Field]] = []
for _group, _fields in GROUPS.items():
    for _f in _fields:
        if "<" in _f.name:
            _PATTERNS.append((_pattern(_f.name), _group, _f))
        else:
            _EXACT[_f.name] = (_group, _f)


def field_of(key: str) -> tuple[str, Field] | None:
    """The (group, declaration) of a record key, or None when it is not declared."""
    if key in _EXACT:
        return _EXACT[key]
    for pattern, group, f in _PATTERNS:
        if pattern.match(key):
            return group, f
    return None


def _group_class(group: str) -> type:
    """One dataclass per group; its fields are the group's declared names (patterns collect in `more`)."""
    names = [f.name for f in GROUPS[group] if "<" not in f.name]
    cls = dataclasses.make_dataclass(
        group.title().replace("_", "") + "Fields",
        [(n, Any, dataclasses.field(default=None)) for n in names]
        + [("more", dict, dataclasses.field(default_factory=dict))],
        frozen=True)
    cls.__doc__ = f"The record's {group.replace('_', ' ')} fields (record/fields.py)."
    return cls


GROUP_CLASSES: dict[str, type] = {g: _group_class(g) for g in GROUPS}


class UndeclaredField(ValueError):
    """A trial tried to store a field that record/fields.py does not declare."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial's record: a dataclass per group (identity, parameters, compute, performance, ...)."""

    groups: dict[str, Any]
    present: frozenset[str]  # the keys the flat record held (None values included)

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TrialRecord:
        values: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        more: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
        undeclared = []
        for key, value in flat.items():
            found = field_of(key)
            if found is None:
                undeclared.append(key)
                continue
            group, f = found
            (more if "<" in f.name else values)[group][key] = value
        if undeclared:
            raise UndeclaredField(f"record fields not declared in record/fields.py: {', '.join(sorted(undeclared))}")
        groups = {g: GROUP_CLASSES[g](**values[g], more=more[g]) for g in GROUPS}
        return cls(groups=groups, present=frozenset(flat))

    def __getattr__(self, group: str):
        try:
            return self.groups[group]
        except KeyError:
            raise AttributeError(group) from None

    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for obj in self.groups.values():
            for f in dataclasses.fields(obj):
                if f.name == "more":
                    out.update(obj.more)
                elif f.name in self.present:
                    out[f.name] = getattr(obj, f.name)
        return out


def checked(flat: dict[str, Any]) -> dict[str, Any]:
    """The flat record, after checking every key is declared (raises UndeclaredField otherwise)."""
    return TrialRecord.from_flat(flat).to_flat()
