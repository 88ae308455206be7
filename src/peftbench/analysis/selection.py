"""Which trials a recommendation, Pareto front or report may use: one setup, reportable trials only,
collapsed trials left out unless asked for.

A setup (model, data, split, max length, epochs, batch size, device type, precision, and the train size
outside the data-efficiency study) is never mixed with another: numbers from two setups are not seeds of
one experiment. When a store holds several and the user named none, the command stops and lists them.
Inside a setup each configuration is its own candidate (`method` is its label, config/identity.py): a
tuned and an untuned LoRA-r8 are ranked side by side, never averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from peftbench.errors import PeftbenchError
from peftbench.stats import summary as stats


@dataclass
class Selection:
    records: pd.DataFrame  # every study of one setup, reportable, collapsed trials dropped unless asked
    setup_label: str | None  # None: the records carry no setup (older store), treated as one setup
    notes: list[str] = field(default_factory=list)
    collapsed: list[tuple[str, int, str]] = field(default_factory=list)  # (method, seed, reason) left out


def _dataset_of(records: pd.DataFrame) -> pd.Series:
    if "dataset" in records:
        return records["dataset"].astype(str)
    prov = records["provenance"] if "provenance" in records else pd.Series(None, index=records.index)
    return prov.map(lambda p: str((p.get("data") or {}).get("dataset")) if isinstance(p, dict) else "None")


def _split_of(records: pd.DataFrame) -> pd.Series:
    prov = records["provenance"] if "provenance" in records else pd.Series(None, index=records.index)
    return prov.map(lambda p: str((p.get("data") or {}).get("split_hash")) if isinstance(p, dict) else "None")


def _filter(records: pd.DataFrame, values: pd.Series, wanted: str | None, option: str) -> pd.DataFrame:
    if wanted is None:
        return records
    kept = records[values == wanted]
    if kept.empty:
        known = ", ".join(sorted(set(values.dropna().astype(str))))
        raise PeftbenchError(f"no finished trials with {option} {wanted} (in this store: {known})")
    return kept


def reportable(records: pd.DataFrame) -> pd.DataFrame:
    """Pruned and unchosen tuning candidates never enter scores: peftbench.stats.reportable decides."""
    return stats.reportable(records)


def collapsed_mask(records: pd.DataFrame) -> pd.Series:
    if "collapsed" not in records:
        return pd.Series(False, index=records.index)
    return records["collapsed"].map(lambda v: bool(v) if v is not None and not pd.isna(v) else False)


def collapsed_trials(records: pd.DataFrame) -> list[tuple[str, int, str]]:
    """(method, seed, reason) of every collapsed trial, in store order."""
    rows = records[collapsed_mask(records)]
    reasons = rows["collapse_reason"] if "collapse_reason" in rows else pd.Series(None, index=rows.index)
    return [(str(m), int(s), str(r) if isinstance(r, str) and r else "collapsed")
            for m, s, r in zip(rows["method"], rows["seed"], reasons)]


def describe_collapsed(trials: list[tuple[str, int, str]]) -> str:
    return "; ".join(f"{m} (seed {s}): {r}" for m, s, r in trials)


def _one_configuration_per_name(records: pd.DataFrame) -> None:
    """A candidate's name stands for one configuration; a frame where it stands for two (built by hand,
    not read from a store) is refused rather than averaged."""
    if "config" not in records or records.empty:
        return
    keys = [c for c in ("study", "method", "train_size") if c in records]
    counts = records.groupby(keys, dropna=False)["config"].nunique()
    pooled = counts[counts > 1]
    if len(pooled):
        names = ", ".join(str(k[1] if isinstance(k, tuple) else k) for k in pooled.index)
        raise PeftbenchError(f"{names}: one name holds several configurations; read the records through "
                             "Store.records (which labels each configuration) or pick one with --setup")


def select_records(records: pd.DataFrame, setup: str | None = None, model: str | None = None,
                   dataset: str | None = None, include_collapsed: bool = False) -> Selection:
    """Reportable trials of one setup; refuses (one line, listing them) when several setups remain."""
    records = reportable(records)
    records = _filter(records, records["model"].astype(str) if "model" in records else
                      pd.Series("None", index=records.index), model, "--model")
    records = _filter(records, _dataset_of(records), dataset, "--dataset")
    label = None
    if "setup" in records:  # hand-built frames may lack the store's `setup` / `setup_label` columns
        keys = records["setup"].astype(str)
        if setup is not None:
            records = _filter(records, keys, setup, "--setup")
            keys = records["setup"].astype(str)
        labels = records["setup_label"].astype(str) if "setup_label" in records else keys
        found = dict(zip(keys, labels))
        # Each study's own settings differ by design (the data-efficiency study trains 3 epochs at batch 8
        # on a 200-row test subset), so one setup per study, and one model and data split across them.
        per_study = records.assign(_key=keys).groupby("study")["_key"].nunique()
        data_ids = set(zip(records["model"].astype(str) if "model" in records else [""] * len(records),
                           _split_of(records)))
        if len(found) > 1 and (per_study.max() > 1 or len(data_ids) > 1):
            listed = "; ".join(f"{k} ({v})" for k, v in found.items())
            raise PeftbenchError(f"this store holds {len(found)} setups: {listed}. Pick one with --setup KEY, "
                                 "or narrow with --model / --dataset")
        study_labels = {st: lab for st, lab in zip(records["study"], labels)}
        label = " | ".join(f"{st}: {lab}" for st, lab in study_labels.items()) if len(found) > 1 else \
            next(iter(found.values()), None)
    elif setup is not None:
        raise PeftbenchError("--setup: these trials carry no setup key (an older store); use --model / "
                             "--dataset")
    _one_configuration_per_name(records)
    sel = Selection(records, label)
    trials = collapsed_trials(records)
    if trials and not include_collapsed:
        sel.records = records[~collapsed_mask(records)]
        sel.collapsed = trials
        sel.notes.append("left out as collapsed (they predict almost one class; --include-collapsed ranks "
                         f"them): {describe_collapsed(trials)}")
    elif trials:
        sel.notes.append(f"collapsed trials included at your request: {describe_collapsed(trials)}")
    return sel
