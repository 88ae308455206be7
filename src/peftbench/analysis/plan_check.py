"""Predicted against measured, trial by trial: the plan's training memory and time (stored in the record
before the trial ran, studies/forecast.py) beside what the trial measured, the error, and a flag where the
error passes the tolerance.

The tolerances are the worst errors bench/plan_accuracy.py holds the planner to (memory 25%, time 35%
after calibration): inside them the plan did what it claims; outside them it missed something in this
trial, worth a look before trusting the next plan of this setup. A timing taken while other work shared
the machine (timing_contended) is no test of the plan, so it is marked as contended, never flagged; a
roofline time (a device that was not here) is an estimate from peak figures, not held to the tolerance.
"""

from __future__ import annotations

import math

import pandas as pd

MEMORY_TOLERANCE_PCT = 25.0
TIME_TOLERANCE_PCT = 35.0
TOLERANCE_WHY = (f"A trial is flagged when its measured training memory differs from the plan's by more "
                 f"than {MEMORY_TOLERANCE_PCT:.0f}% or its training time by more than "
                 f"{TIME_TOLERANCE_PCT:.0f}% (calibrated times only): the worst errors "
                 f"bench/plan_accuracy.py holds the planner to, so a flagged trial is one the plan got "
                 f"wrong by more than it claims; a contended timing is no test of the plan and is marked, "
                 f"not flagged")


def error_pct(predicted, measured) -> float | None:
    """(predicted - measured) / measured in %, or None when either is missing."""
    if predicted is None or measured is None:
        return None
    p, m = float(predicted), float(measured)
    if math.isnan(p) or math.isnan(m) or m == 0:
        return None
    return 100.0 * (p - m) / m


def _get(row, key):
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def check_row(row) -> dict:
    """One trial's predicted and measured figures, errors and flags (a dict; see plan_checks)."""
    cuda = _get(row, "predicted_peak_cuda_allocated_mb") is not None
    pred_mem = _get(row, "predicted_peak_cuda_allocated_mb" if cuda else "predicted_peak_rss_net_mb")
    meas_mem = _get(row, "peak_cuda_allocated_mb" if cuda else "peak_rss_net_mb")
    pred_s, meas_s = _get(row, "predicted_train_seconds"), _get(row, "train_seconds")
    how = _get(row, "predicted_time_how")
    mem_err, time_err = error_pct(pred_mem, meas_mem), error_pct(pred_s, meas_s)
    flags = []
    if mem_err is not None and abs(mem_err) > MEMORY_TOLERANCE_PCT:
        flags.append("memory")
    contended = bool(_get(row, "timing_contended"))
    if time_err is not None and abs(time_err) > TIME_TOLERANCE_PCT and how in ("calibrated", "rate") \
            and not contended:
        flags.append("time")
    pred_params, params = _get(row, "predicted_trainable_params"), _get(row, "trainable_params")
    if pred_params is not None and params is not None and int(pred_params) != int(params):
        flags.append("parameters")
    return {"method": row.get("method"), "seed": row.get("seed"), "train_size": row.get("train_size"),
            "memory_measured_as": "peak_cuda_allocated_mb" if cuda else "peak_rss_net_mb",
            "predicted_memory_mb": pred_mem, "measured_memory_mb": meas_mem, "memory_error_pct": mem_err,
            "predicted_train_seconds": pred_s, "train_seconds": meas_s, "time_error_pct": time_err,
            "time_how": how, "timing_contended": contended, "flags": flags,
            "note": _get(row, "prediction_note")}


def plan_checks(records: pd.DataFrame) -> pd.DataFrame:
    """One row per trial that was planned (a prediction or a note saying why there is none), in the order of
    the records; empty when no trial of `records` went through a plan (stores from before plans)."""
    if records.empty:
        return pd.DataFrame()
    keys = ("predicted_peak_rss_net_mb", "predicted_peak_cuda_allocated_mb", "predicted_train_seconds",
            "prediction_note")
    if not any(k in records.columns for k in keys):
        return pd.DataFrame()
    rows = [check_row(r) for _, r in records.iterrows()
            if any(_get(r, k) is not None for k in keys if k in records.columns)]
    return pd.DataFrame(rows)


def summary_line(checks: pd.DataFrame) -> str:
    """Median and worst absolute error of each figure over the planned trials (times: clean timings only),
    and how many trials were flagged."""
    def part(errs: pd.Series, what: str) -> str:
        errs = errs.dropna().abs()
        if errs.empty:
            return f"{what}: nothing to compare" + (" (every timing contended)" if what == "time" else "")
        return f"{what} |error| median {errs.median():.0f}%, worst {errs.max():.0f}% ({len(errs)} trials)"

    clean = checks[~checks["timing_contended"].astype(bool)]
    flagged = int(sum(bool(f) for f in checks["flags"]))
    return (f"{part(checks['memory_error_pct'], 'memory')}; {part(clean['time_error_pct'], 'time')}; "
            f"{flagged} flagged (tolerance: memory {MEMORY_TOLERANCE_PCT:.0f}%, "
            f"time {TIME_TOLERANCE_PCT:.0f}%)")


def cells(check: dict) -> list[str]:
    """One check as the text cells both the terminal table and the HTML report show."""
    check = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in check.items()}

    def f(x, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    mark = ", ".join(check["flags"]) if check["flags"] else ""
    if check["timing_contended"] and check["time_error_pct"] is not None:
        mark = (mark + "; " if mark else "") + "timing contended"
    how = str(check["time_how"] or "-")
    return [str(check["method"]), str(check["seed"]),
            f(check["predicted_memory_mb"], ",.0f"), f(check["measured_memory_mb"], ",.0f"),
            f(check["memory_error_pct"], "+.0f"), f(check["predicted_train_seconds"], ".1f"),
            f(check["train_seconds"], ".1f"), f(check["time_error_pct"], "+.0f"), how,
            ("over tolerance: " + mark) if check["flags"] else mark or str(check["note"] or "")[:90]]


HEADERS = ["method", "seed", "memory pred MiB", "memory meas MiB", "memory err %", "train s pred",
           "train s meas", "time err %", "time from", "flag / note"]
