"""Every study plans first and checks after. Before the first trial (the store open and locked, the data
prepared), `peftbench plan` (peftbench.plan) is made for every trial that will run, on the data the trials
will read: its total predicted training time is printed; methods whose predicted training memory passes
--max-memory are left out, one line each; a study predicted to overrun --budget stops before any trial
runs (the store it would have created is not left behind), saying by how much and what would fit. Each
trial's record then stores its prediction beside what it measured (runner._store).

Planning never stops a study: a method whose plan fails still runs, and its record says why it has no
prediction. What --budget bounds is the predicted training time (what the plan predicts): each trial also
evaluates and times inference, which the plan does not predict.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from peftbench.config.spec import TrialSpec
from peftbench.errors import PeftbenchError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: Any) -> float | None:
    """--budget: '20m', '90s', '1.5h' or seconds as a plain number; None when not given."""
    if text is None:
        return None
    raw = str(text).strip().lower().replace(" ", "")
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smh]?)", raw)
    if not match:
        raise PeftbenchError(f"--budget must be a duration such as 90s, 20m or 1.5h, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not seconds > 0 or math.isinf(seconds):
        raise PeftbenchError(f"--budget must be a positive duration, got {text!r}")
    return seconds


def parse_max_memory(text: Any) -> float | None:
    """--max-memory: a size in GB ('4', '4GB', '512MB'), as MiB."""
    from peftbench.plan.memory import parse_size_gb

    return parse_size_gb(text, "--max-memory")


def duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class Forecast:
    """Each planned trial's prediction (record fields), the trials left out, and the lines printed."""

    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    left_out: set[str] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    total_train_s: float | None = None


def plan_trials(will_run: list[TrialSpec], prepared: dict, *, budget_s: float | None = None,
                max_memory_mb: float | None = None, calibrate: bool = True, threads: int | None = None,
                say: Callable[[str], None] | None = None) -> Forecast:
    """Plan `will_run` (the trials the store does not hold yet) on their prepared data ((model, data) ->
    data), apply --max-memory and --budget, and `say` each line as it is known (so the plan is printed also
    when the budget then stops the study). Raises PeftbenchError when no method fits or the budget is
    short."""
    import time

    t0 = time.perf_counter()
    say = say or (lambda _line: None)
    forecast = Forecast()
    if not will_run:
        return forecast
    plans = _plan_setups(will_run, calibrate, threads, prepared)
    if not calibrate:
        forecast.lines.append("plan: the trials run on a cluster, so times are roofline estimates from this "
                              "machine's GEMM rate, not calibrated")
    for spec in will_run:
        forecast.predictions[spec.trial_id] = prediction_fields(spec, plans.get(_setup(spec), {}))
    forecast.left_out = _left_out(will_run, forecast.predictions, max_memory_mb, forecast.lines)
    if forecast.left_out and len(forecast.left_out) == len(will_run):
        smallest = min(p.get("predicted_peak_rss_net_mb", p.get("predicted_peak_cuda_allocated_mb"))
                       for p in forecast.predictions.values())
        raise PeftbenchError(f"no method of the study fits --max-memory {max_memory_mb / 1024:g} GB "
                             f"({max_memory_mb:,.0f} MiB): the smallest predicted training memory is "
                             f"{smallest:,.0f} MiB (nothing was run)")
    running = [s for s in will_run if s.trial_id not in forecast.left_out]
    times = {s.trial_id: forecast.predictions[s.trial_id].get("predicted_train_seconds") for s in running}
    known = [t for t in times.values() if t is not None]
    forecast.total_train_s = sum(known) if known else None
    forecast.lines.append(_total_line(running, times, forecast.predictions)
                          + f"; planned in {time.perf_counter() - t0:.1f} s")
    for line in forecast.lines:
        say(line)
    if budget_s is not None:
        _check_budget(running, times, budget_s)
        forecast.lines.append(f"within --budget {duration(budget_s)}")
        say(forecast.lines[-1])
    return forecast


def _setup(spec: TrialSpec) -> tuple:
    return (spec.model, spec.data, spec.train)


def _method_key(spec: TrialSpec) -> str:
    """A method as the plan sees it: learning rates change neither memory nor time."""
    d = spec.method.to_dict()
    return json.dumps({"family": d["family"], "options": d["options"]}, sort_keys=True, default=str)


def _plan_setups(will_run: list[TrialSpec], calibrate: bool, threads: int | None, prepared: dict
                 ) -> dict[tuple, dict[str, Any]]:
    """One plan per setup (model, data, training options), each method once: setup -> method key -> row
    (or {"error": reason})."""
    import torch

    from peftbench.plan.assemble import PlanRequest, make_plan

    groups: dict[tuple, dict[str, TrialSpec]] = defaultdict(dict)
    for s in will_run:
        groups[_setup(s)].setdefault(_method_key(s), s)
    saved_threads = torch.get_num_threads()
    out: dict[tuple, dict[str, Any]] = {}
    try:
        if threads:
            torch.set_num_threads(threads)  # calibrate as the trials will run
        for (model, data_spec, train), methods in groups.items():
            keys = list(methods)
            try:
                device = _device(train.device)
                req = PlanRequest(model, data_spec, dataclasses.replace(train, device=device),
                                  [methods[k].method for k in keys], device=device, calibrate=calibrate,
                                  inference=False)
                plan = make_plan(req, data=prepared.get((model, data_spec)), keep_going=True)
                out[(model, data_spec, train)] = {k: {**row, "_plan_device": device}
                                                  for k, row in zip(keys, plan["methods"])}
            except Exception as exc:  # noqa: BLE001 - a plan that fails never stops the study
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                out[(model, data_spec, train)] = {k: {"error": f"{type(exc).__name__}: {why}"} for k in keys}
    finally:
        torch.set_num_threads(saved_threads)
    return out


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def prediction_fields(spec: TrialSpec, rows: dict[str, Any]) -> dict[str, Any]:
    """The record fields (record/fields.py, group plan) of one trial's prediction."""
    row = rows.get(_method_key(spec))
    if row is None or "error" in row:
        why = "not planned" if row is None else row["error"]
        return {"prediction_note": f"no prediction: the plan of {spec.method.name} failed ({why})"}
    memory, time = row["memory"], row["time"]
    mem_field = "predicted_peak_cuda_allocated_mb" if row["_plan_device"] == "cuda" else \
        "predicted_peak_rss_net_mb"
    out = {mem_field: memory["peak_mb"], "predicted_trainable_params": row["params"]["trainable_params"],
           "predicted_train_seconds": time["trial_s"], "predicted_time_how": time["how"]}
    notes = [time["note"]] if time.get("note") else []
    if spec.seed != 0:
        notes.append("batch shapes drawn with seed 0's order")
    if spec.tune is not None:
        notes.append("a tuning candidate: predicted to run to the end (pruning not foreseen)")
    if notes:
        out["prediction_note"] = "; ".join(notes)
    return out


def _left_out(will_run: list[TrialSpec], predictions: dict, limit_mb: float | None, lines: list[str]) -> set:
    """Trial ids whose predicted training memory passes --max-memory, with one line per method."""
    if limit_mb is None:
        return set()
    out, said = set(), set()
    for s in will_run:
        p = predictions[s.trial_id]
        peak = p.get("predicted_peak_rss_net_mb", p.get("predicted_peak_cuda_allocated_mb"))
        if peak is None or peak <= limit_mb:
            continue
        out.add(s.trial_id)
        what = "CUDA peak allocated" if "predicted_peak_cuda_allocated_mb" in p else "net peak RSS"
        line = (f"left out: {s.method.name} would need {peak:,.0f} MiB of training memory ({what}, "
                f"predicted), over --max-memory {limit_mb / 1024:g} GB ({limit_mb:,.0f} MiB)")
        if line not in said:
            said.add(line)
            lines.append(line)
    return out


def _total_line(running: list[TrialSpec], times: dict, predictions: dict) -> str:
    known = [t for t in times.values() if t is not None]
    missing = len(times) - len(known)
    peaks = [v for p in (predictions[s.trial_id] for s in running) for k, v in p.items()
             if k in ("predicted_peak_rss_net_mb", "predicted_peak_cuda_allocated_mb")]
    text = f"plan: {len(running)} trial(s) to run"
    if known:
        text += f", predicted training time {duration(sum(known))} in all"
    if missing:
        text += f" ({missing} without a time prediction, not counted)"
    if peaks:
        low, high = f"{min(peaks):,.0f}", f"{max(peaks):,.0f}"
        text += f"; training memory {low if low == high else low + '-' + high} MiB per trial"
    return text + " (training only: evaluation and inference measures come on top)"


def _check_budget(running: list[TrialSpec], times: dict, budget_s: float) -> None:
    """Stop before anything runs when the predicted training time passes the budget: by how much, and what
    would fit (the quickest methods; a smaller train size)."""
    total = sum(t for t in times.values() if t is not None)
    if total <= budget_s:
        return
    per_method: dict[str, float] = defaultdict(float)
    for s in running:
        per_method[s.method.name] += times[s.trial_id] or 0.0
    fits, used = [], 0.0
    for name, t in sorted(per_method.items(), key=lambda kv: kv[1]):
        if used + t <= budget_s:
            fits.append(name)
            used += t
    options = []
    if fits and len(fits) < len(per_method):
        options.append(f"--methods {','.join(fits)} ({duration(used)})")
    sizes = {s.train.train_size for s in running}
    batch = min(s.train.batch_size for s in running)
    if len(sizes) == 1:
        size = next(iter(sizes))
        smaller = int(size * budget_s / total) // batch * batch
        if smaller >= batch:
            options.append(f"--train-size {smaller} (about {duration(total * smaller / size)})")
    within = "; within it: " + " or ".join(options) if options else "; nothing in it fits"
    raise PeftbenchError(f"the study's predicted training time, {duration(total)}, is over --budget "
                         f"{duration(budget_s)} by {duration(total - budget_s)}{within} (nothing was run)")


class Planner:
    """What `run` and `study` (CLI and API) hand the runner: --budget and --max-memory read at once (a bad
    value is one line, before anything), then called by the runner with the trials it will run and their
    prepared data, after the store is open and locked and before the first trial."""

    def __init__(self, executor=None, budget: Any = None, max_memory: Any = None,
                 say: Callable[[str], None] = print):
        self.budget_s, self.max_memory_mb = parse_budget(budget), parse_max_memory(max_memory)
        self.executor, self.say = executor, say

    def __call__(self, will_run: list[TrialSpec], prepared: dict) -> Forecast:
        inner = getattr(self.executor, "inner", self.executor)  # a tuning executor wraps the one that runs
        here = inner is None or type(inner).__name__ == "LocalExecutor"
        if not here and callable(getattr(inner, "check", None)):
            inner.check()  # a cluster that cannot be reached or hold a trial is one line, before planning
        threads = getattr(inner, "threads", None)
        return plan_trials(will_run, prepared, budget_s=self.budget_s, max_memory_mb=self.max_memory_mb,
                           calibrate=here, threads=threads, say=self.say)
