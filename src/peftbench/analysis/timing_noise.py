"""Timing noise for the bootstrap: every cost a ranking compares varies per resample, by its own measured
uncertainty, so that a cost edge inside the noise is a tie.

A time or memory figure is one measurement at one moment. Held fixed in the bootstrap, a 6% training-time
edge wins every resample, while the same deployed graph timed in two trials of the default study differed
by 30% (merged LoRA-r8 vs Full, p50 27.2 vs 20.8 ms). So each cost of each method is drawn per resample as
mean x exp(s z), z standard normal, s its relative (log) noise: s^2 = drift^2 + repeats^2 per trial, divided
by the method's trial count. One z per method and kind of cost (train time, latency, throughput, memory),
shared by that kind's columns: they are one measurement seen several ways.

drift, the spread of one figure between trials, is measured in the store, in this order:
- latency and throughput: the spread (pooled SD of log values) of one deployed graph timed in several
  trials: the seeds of a configuration, and every trial whose deployed graph is the bare base model (Full,
  BitFit, and each method whose figures are merged);
- train time and memory: the spread over the seeds of each configuration. Without seeds nothing repeats a
  training run, so train time takes the machine's drift measured above (the larger of latency's and
  throughput's: either one may happen to repeat closely), stated as borrowed;
- where nothing can be measured: a stated prior, TIMING_PRIOR or MEMORY_PRIOR, never zero.
repeats, within a trial: a latency's interquartile range over its calls gives the standard error of its
median (normal approximation), taking the fewest calls a trial may make (the record does not keep its count).
Counts (FLOPs, parameters, bytes) are exact and stay fixed.

Inference read from the side-by-side pass (studies/side_by_side.py: every deployed model timed round robin
in one process), when every trial has figures from one pass, replaces the trials' own: its rounds are
resampled, the same rounds for every method (paired), and no between-trial drift applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from peftbench.stats.summary import numeric_column

TIMING_PRIOR = 0.10  # relative drift of a timing between trials when the store measures none
MEMORY_PRIOR = 0.05  # of a memory peak between runs (allocator and page timing) when no seeds measure it
FEWEST_CALLS = 5  # TrainSpec.validate's minimum latency_runs: the repeats term is never understated
SIDE_LATENCY, SIDE_THROUGHPUT = "side_latency_p50_ms", "side_throughput_per_s"
KINDS: dict[str, tuple[str, ...]] = {
    "train time": ("train_seconds", "seconds_per_epoch", "train_samples_per_s", "train_tokens_per_s"),
    "latency": ("deployed_latency_ms", "latency_p50_ms", "latency_mean_ms", "latency_p95_ms",
                "merged_latency_p50_ms", "merged_latency_p95_ms", "ttft_p50_ms", "merged_ttft_p50_ms",
                SIDE_LATENCY),
    "throughput": ("deployed_throughput_per_s", "throughput_per_s", "merged_throughput_per_s",
                   "decode_tokens_per_s_batched", "decode_tokens_per_s_batch1", SIDE_THROUGHPUT),
    "memory": ("train_memory_mb", "peak_rss_mb", "peak_rss_net_mb", "peak_cuda_allocated_mb",
               "peak_cuda_reserved_mb", "inference_peak_rss_mb"),
}
# Read from the side-by-side pass's rounds when it is used (analysis/scores.py reads the same choice).
SIDE_READ = {"deployed_latency_ms": "latency", SIDE_LATENCY: "latency",
             "deployed_throughput_per_s": "throughput", SIDE_THROUGHPUT: "throughput"}
BARE_BASE_FAMILIES = ("full", "bitfit")  # deployed as the base model's own graph (BitFit: its biases exist)


def side_by_side_usable(records: pd.DataFrame) -> bool:
    """Every trial carries inference figures from one and the same side-by-side pass."""
    if records.empty or "side_pass" not in records or SIDE_LATENCY not in records:
        return False
    passes = records["side_pass"]
    return bool(passes.notna().all() and passes.nunique() == 1
                and pd.to_numeric(records[SIDE_LATENCY], errors="coerce").notna().all())


@dataclass(frozen=True)
class Drift:
    kind: str
    sigma: float  # relative (log) SD of one trial's figure between trials
    source: str  # what it was measured from, in words

    def text(self) -> str:
        return f"{self.kind} ±{self.sigma:.1%} per trial ({self.source})"


@dataclass
class TimingNoise:
    """What the bootstrap used: per kind of cost its drift, and the side-by-side pass when inference reads it."""

    drifts: dict[str, Drift]
    side_pass: str | None = None
    side_text: str | None = None
    within: dict[str, float] = field(default_factory=dict)  # method -> latency repeats term (relative)

    def lines(self) -> list[str]:
        out = [d.text() for d in self.drifts.values()]
        if self.side_text:
            out.append(self.side_text)
        return out


def _merged(records: pd.DataFrame) -> pd.Series:
    can = records["can_merge"].fillna(False).astype(bool) if "can_merge" in records else False
    return can & numeric_column(records, "merged_latency_p50_ms").notna()


def _deployed_values(records: pd.DataFrame, plain: str, merged: str) -> pd.Series:
    """Per trial, its own deployed figure: merged where it merged, else the plain one."""
    return numeric_column(records, merged).where(_merged(records), numeric_column(records, plain))


def _memory_values(records: pd.DataFrame) -> pd.Series:
    for col in ("peak_cuda_allocated_mb", "peak_rss_net_mb", "peak_rss_mb"):
        values = numeric_column(records, col)
        if values.notna().all():
            return values
    return numeric_column(records, "peak_rss_mb")


def _pooled_log_sd(values: pd.Series, keys: pd.Series) -> tuple[float, int, list[str]]:
    """Pooled within-group SD of log(values) over groups with two or more positive values; (sd, trials, groups)."""
    frame = pd.DataFrame({"v": np.log(values.where(values > 0)), "k": keys}).dropna()
    ss, dof, trials, groups = 0.0, 0, 0, []
    for key, grp in frame.groupby("k", sort=False):
        if len(grp) >= 2:
            ss += float(((grp["v"] - grp["v"].mean()) ** 2).sum())
            dof += len(grp) - 1
            trials += len(grp)
            groups.append(str(key))
    return (float(np.sqrt(ss / dof)) if dof else float("nan")), trials, groups


def _graph_keys(records: pd.DataFrame) -> pd.Series:
    """Trials with one key time one deployed graph: the bare base, else the configuration (its seeds)."""
    family = records["family"].astype(str) if "family" in records else pd.Series("", index=records.index)
    bare = family.isin(BARE_BASE_FAMILIES) | _merged(records)
    return pd.Series(np.where(bare, "the base model", records["method"].astype(str)), index=records.index)


def _bare_base_names(records: pd.DataFrame) -> str:
    keys = _graph_keys(records)
    merged = _merged(records)
    names = [f"{m} merged" if mg else str(m) for m, k, mg in zip(records["method"], keys, merged)
             if k == "the base model"]
    names = list(dict.fromkeys(names))
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _inference_drift(records: pd.DataFrame, kind: str, plain: str, merged: str) -> Drift | None:
    sd, trials, groups = _pooled_log_sd(_deployed_values(records, plain, merged), _graph_keys(records))
    if not np.isfinite(sd):
        return None
    parts = []
    if "the base model" in groups:
        parts.append(f"the base model's graph: {_bare_base_names(records)}")
    seeds = [g for g in groups if g != "the base model"]
    if seeds:
        parts.append(f"seeds of {', '.join(seeds[:4])}" + (" ..." if len(seeds) > 4 else ""))
    return Drift(kind, max(sd, 1e-3), f"measured: one deployed graph timed in {trials} trials ("
                 + "; ".join(parts) + ")")


def _seed_drift(records: pd.DataFrame, kind: str, values: pd.Series) -> Drift | None:
    """Over the seeds of each configuration (method and train size: a sweep's sizes are not seeds)."""
    keys = records["method"].astype(str)
    if "train_size" in records:
        keys = keys + " at " + records["train_size"].astype(str)
    sd, trials, groups = _pooled_log_sd(values, keys)
    if not np.isfinite(sd):
        return None
    return Drift(kind, max(sd, 1e-3), f"measured: spread over the seeds of {len(groups)} configuration(s), "
                 f"{trials} trials")


def measure_drift(records: pd.DataFrame) -> dict[str, Drift]:
    """Per kind of cost, its drift between trials and where it came from (see the module's docstring)."""
    latency = _inference_drift(records, "latency", "latency_p50_ms", "merged_latency_p50_ms") or Drift(
        "latency", TIMING_PRIOR, "prior: no deployed graph was timed in two trials here")
    throughput = _inference_drift(records, "throughput", "throughput_per_s", "merged_throughput_per_s") or Drift(
        "throughput", TIMING_PRIOR, "prior: no deployed graph was timed in two trials here")
    train = _seed_drift(records, "train time", numeric_column(records, "train_seconds"))
    if train is None:
        measured = [d for d in (throughput, latency) if d.source.startswith("measured")]
        machine = max(measured, key=lambda d: d.sigma) if measured else None
        train = (Drift("train time", machine.sigma, f"borrowed: no configuration has two seeds, so the "
                       f"machine's drift between trials measured on {machine.kind}")
                 if machine else Drift("train time", TIMING_PRIOR, "prior: no seeds and no repeated graph"))
    memory = _seed_drift(records, "memory", _memory_values(records)) or Drift(
        "memory", MEMORY_PRIOR, "prior: no configuration has two seeds")
    return {d.kind: d for d in (train, latency, throughput, memory)}


def latency_repeats(records: pd.DataFrame) -> pd.Series:
    """Per trial, the relative standard error of its latency median from its calls' interquartile range
    (the larger of the plain and merged figures')."""
    terms = []
    for prefix in ("latency", "merged_latency"):
        p25, p50, p75 = (numeric_column(records, f"{prefix}_{q}_ms") for q in ("p25", "p50", "p75"))
        terms.append(1.2533 * (p75 - p25) / 1.349 / np.sqrt(FEWEST_CALLS) / p50.where(p50 > 0))
    return pd.concat(terms, axis=1).max(axis=1).fillna(0.0)


def _side_draws(records: pd.DataFrame, methods: list[str], resamples: int,
                rng: np.random.Generator) -> tuple[dict[str, np.ndarray], float]:
    """(resamples, methods) latency medians and throughputs from the pass's rounds, drawn in pairs."""
    rounds = {len(json.loads(s)) for s in records["side_batch_seconds"]}
    idx = rng.integers(0, min(rounds), size=(resamples, min(rounds)))
    lat = np.full((resamples, len(methods)), np.nan)
    thr = np.full((resamples, len(methods)), np.nan)
    for col, method in enumerate(methods):
        trials = records[records["method"] == method]
        lats, thrs = [], []
        for _, row in trials.iterrows():
            mat = np.asarray(json.loads(row["side_latency_rounds"]), float)[: idx.shape[1]]
            secs = np.asarray(json.loads(row["side_batch_seconds"]), float)[: idx.shape[1]]
            lats.append(np.median(mat[idx].reshape(resamples, -1), axis=1))
            thrs.append(float(row["side_batch_rows"]) * idx.shape[1] / secs[idx].sum(axis=1))
        if lats:
            lat[:, col], thr[:, col] = np.mean(lats, axis=0), np.mean(thrs, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = float(np.nanmedian(np.nanstd(np.log(lat), axis=0))) if np.isfinite(lat).any() else float("nan")
    return {"latency": lat, "throughput": thr}, spread


def cost_draws(records: pd.DataFrame, means: pd.DataFrame, methods: list[str], resamples: int,
               rng: np.random.Generator) -> tuple[dict[str, np.ndarray], TimingNoise]:
    """Per cost column in `means` (methods x columns, the mean over each method's trials): its (resamples,
    methods) draws, and what noise they used."""
    drifts = measure_drift(records)
    means = means.reindex(methods)
    counts = records.groupby("method", sort=False).size().reindex(methods).fillna(1).to_numpy(float)
    repeats = latency_repeats(records).groupby(records["method"], sort=False).apply(
        lambda s: float(np.sqrt((s ** 2).mean()))).reindex(methods).fillna(0.0)
    values: dict[str, np.ndarray] = {}
    for kind, columns in KINDS.items():
        z = rng.standard_normal((resamples, len(methods)))
        within = repeats.to_numpy(float) if kind == "latency" else 0.0
        s = np.sqrt(drifts[kind].sigma ** 2 + within ** 2) / np.sqrt(counts)
        for c in columns:
            if c in means and pd.to_numeric(means[c], errors="coerce").notna().any():
                values[c] = pd.to_numeric(means[c], errors="coerce").to_numpy(float) * np.exp(s * z)
    noise = TimingNoise(drifts, within=dict(repeats))
    if side_by_side_usable(records):
        side, spread = _side_draws(records, methods, resamples, rng)
        for column, kind in SIDE_READ.items():
            values[column] = side[kind]
        noise.side_pass = str(records["side_pass"].iloc[0])
        rounds = int(pd.to_numeric(records["side_rounds"], errors="coerce").min())
        noise.side_text = (f"inference compared from side-by-side pass {noise.side_pass}: every deployed model "
                           f"timed round robin in one process, its {rounds} rounds resampled in pairs (median "
                           f"spread of a method's latency ±{spread:.1%}); no between-trial drift applies")
    return values, noise
