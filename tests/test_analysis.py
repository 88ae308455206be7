"""The decision layer on hand-made records: scores, Pareto, TOPSIS, scenarios, the recommender and
its CLI. No training: every number is written down here, so every expected result can be checked by hand.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import zlib
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli_main

from peftbench.analysis.confidence import (
    balanced_accuracy_rows,
    front_probability,
    macro_f1_rows,
    resample_metrics,
)
from peftbench.analysis.pareto import Objective, pareto_table, parse_objectives
from peftbench.analysis.recommend import Limits, data_advice, prepare, rank, recommend
from peftbench.analysis.scenarios import SCENARIOS, parse_weights, scenario_weights
from peftbench.analysis.scores import (
    DIMENSION_NAMES,
    METRICS,
    dimension_scores,
    scale_values,
    scoring_notes,
    weighted_scores,
)
from peftbench.analysis.topsis import topsis
from peftbench.config.spec import MethodSpec, TrainSpec, TrialSpec
from peftbench.errors import PeftbenchError
from peftbench.stats.predictions import encode
from peftbench.store.db import Store

BASE_PARAMS = 22_700_000
PROVENANCE = {"versions": {"peftbench": "0.1.0", "torch": "2.13.0"}, "git_hash": "a" * 40, "git_dirty": False,
              "python": "3.11.2", "platform": "Linux", "cpu": "Test CPU", "gpu": None, "torch_threads": 1,
              "start_time": "2025-01-01T00:00:00+00:00",
              "data": {"dataset": "embedded", "split_hash": "abc123", "split_sizes": {"test": 800}}}


class Profile(NamedTuple):
    """One method's measurements in the tradeoff study (seed 0 and 1 differ by +-0.004 accuracy)."""

    family: str
    options: dict
    trainable: int
    acc: float
    train_s: float
    rss_net_mb: float
    flops: float
    ood_bal: float  # OOD balanced accuracy
    drop_pts: float  # robustness drop in accuracy points (negative = worse under perturbation)
    p50_ms: float
    merged_p50_ms: float | None
    throughput: float
    merged_throughput: float | None
    adapter_bytes: float


P = Profile
TRADEOFF = {  # fields in Profile's order
    "Full": P("full", {}, 22_700_000, .92, 300, 2400, 3.0e11, .80, -4.0, 10.0, None, 300, None, 90e6),
    "LoRA-r8": P("lora", {"r": 8, "alpha": 16}, 150_000, .89, 200, 1500, 2e11, .78, -5.0, 13.0, 10.2, 240,
                 295, 600e3),
    "BitFit": P("bitfit", {}, 100_000, .85, 150, 1050, 2.0e11, .74, -8.0, 10.0, None, 300, None, 400e3),
    "PrefixTuning-len32": P("prefix", {"tokens": 32}, 400_000, .80, 170, 1150, 2.2e11, .70, -10.0, 14.0,
                            None, 220, None, 1.6e6),
    "AdaLoRA": P("adalora", {"init_r": 12}, 220_000, .895, 260, 1600, 2.1e11, .79, -5.0, 13.5, 10.3, 235,
                 290, 900e3),
}
DATA_EFFICIENCY = {  # accuracy at 100, 250, 500, 1000 examples: BitFit wins small, Full wins large
    "Full": [.55, .66, .80, .88], "LoRA-r8": [.60, .70, .79, .86], "BitFit": [.66, .72, .78, .83],
    "PrefixTuning-len32": [.52, .58, .66, .74],
}
SIZES = [100, 250, 500, 1000]
RANK_SWEEP = {1: (.80, .81), 2: (.84, .845), 4: (.860, .870), 8: (.866, .872), 16: (.865, .870)}  # seed 0, 1
TEST_N, OOD_N, PERTURBED_N = 500, 300, 200
TEST_LABELS = np.random.default_rng(0).permutation(np.repeat([0, 1], TEST_N // 2))  # majority rate 0.5
VAL_LABELS = np.random.default_rng(2).permutation(np.repeat([0, 1], TEST_N // 2))  # validation: as many rows
OOD_LABELS = np.random.default_rng(1).permutation(np.repeat([0, 1], [210, 90]))  # 70/30, as the issue says


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _flip(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[rows] = 1 - out[rows]
    return out


def _macro_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([2 * np.sum((pred == c) & (labels == c)) / (np.sum(pred == c) + np.sum(labels == c))
                          for c in (0, 1)]))


def predicted(method: str, seed: int, acc: float, ood_bal: float, drop_pts: float) -> dict:
    """Per-row predictions that realise the wanted figures, and the figures they give (what a trial
    stores: the summary numbers agree with the rows, so the bootstrap is centred on them). Validation and
    test are both near `acc` (other rows wrong): the choice reads validation, the test split reports."""
    val_rng = _rng(method, seed, "validation")
    val = _flip(VAL_LABELS, val_rng.choice(TEST_N, round((1 - acc) * TEST_N), replace=False))
    rng = _rng(method, seed)
    test = _flip(TEST_LABELS, rng.choice(TEST_N, round((1 - acc) * TEST_N), replace=False))
    ood_wrong = np.concatenate([rng.choice(np.flatnonzero(OOD_LABELS == c), round((1 - ood_bal) * n),
                                           replace=False) for c, n in ((0, 210), (1, 90))])
    ood = _flip(OOD_LABELS, ood_wrong)
    clean, truth = test[:PERTURBED_N], TEST_LABELS[:PERTURBED_N]
    right = np.flatnonzero(clean == truth)
    typo = _flip(clean, rng.choice(right, round(-drop_pts / 100 * PERTURBED_N), replace=False))
    f1 = _macro_f1(test, TEST_LABELS)
    recall = [np.mean(ood[OOD_LABELS == c] == c) for c in (0, 1)]
    drop = float(np.mean(typo == truth) - np.mean(clean == truth))
    return {"accuracy": float(np.mean(test == TEST_LABELS)), "f1": f1, "test_size": TEST_N,
            "test_predictions": encode(test), "test_labels": encode(TEST_LABELS),
            "val_accuracy": float(np.mean(val == VAL_LABELS)), "val_f1": _macro_f1(val, VAL_LABELS),
            "val_predictions": encode(val), "val_labels": encode(VAL_LABELS), "val_majority_rate": 0.5,
            "ood_accuracy": float(np.mean(ood == OOD_LABELS)), "ood_balanced_accuracy": float(np.mean(recall)),
            "ood_predictions": encode(ood), "ood_labels": encode(OOD_LABELS),
            "perturbation_rows": PERTURBED_N, "perturbed_typo_predictions": encode(typo),
            "perturbed_typo_accuracy": float(np.mean(typo == truth)), "robustness_drop_typo": drop,
            "robustness_drop": drop, "collapsed": False, "collapse_reason": None}


def trial(study: str, method: str, family: str, options: dict, seed: int, train_size: int = 1000,
          **measured) -> tuple[dict, dict]:
    """(spec dict, record) as the trial runner would store them."""
    spec = TrialSpec(study=study, method=MethodSpec(method, family, options), seed=seed,
                     train=TrainSpec(train_size=train_size),
                     eval_size=200 if study == "data-efficiency" else None)
    record = {"trial_id": spec.trial_id, "study": study, "method": method, "family": family, "seed": seed,
              "train_size": train_size, "device": "cpu", "base_params": BASE_PARAMS, "provenance": PROVENANCE,
              "lora_r": options.get("r"), "eval_size": spec.eval_size,  # as Store.records adds them
              **measured}
    if "trainable_params" in record:
        record["trainable_pct"] = 100.0 * record["trainable_params"] / BASE_PARAMS
    return spec.to_dict(), record


def tradeoff_trials(extra: dict[str, Profile] | None = None) -> list[tuple[dict, dict]]:
    out = []
    for method, p in {**TRADEOFF, **(extra or {})}.items():
        for seed in (0, 1):
            jitter = 0.004 * (1 if seed else -1)  # seeds differ a little, symmetric around the listed mean
            out.append(trial("tradeoff", method, p.family, p.options, seed, trainable_params=p.trainable,
                             **predicted(method, seed, p.acc + jitter, p.ood_bal, p.drop_pts),
                             train_seconds=p.train_s + 5 * seed, peak_rss_mb=p.rss_net_mb + 350,
                             baseline_rss_mb=350.0, peak_rss_net_mb=p.rss_net_mb, flops_per_step=p.flops,
                             latency_p50_ms=p.p50_ms, merged_latency_p50_ms=p.merged_p50_ms,
                             throughput_per_s=p.throughput, merged_throughput_per_s=p.merged_throughput,
                             adapter_bytes=p.adapter_bytes, can_merge=p.merged_p50_ms is not None,
                             peak_cuda_allocated_mb=None, flops_batch_tokens=2200,
                             **({"merge_max_logit_diff": 2e-6, "merge_logit_scale": 4.0}
                                if p.merged_p50_ms is not None else {})))
    return out


def sweep_trials() -> list[tuple[dict, dict]]:
    out = []
    for method, accs in DATA_EFFICIENCY.items():
        p = TRADEOFF[method]
        for size, acc in zip(SIZES, accs):
            out.append(trial("data-efficiency", method, p.family, p.options, 0, size, accuracy=acc,
                             val_accuracy=acc - 0.01, val_majority_rate=0.5, trainable_params=p.trainable))
    for rank, accs in RANK_SWEEP.items():
        for seed, acc in enumerate(accs):
            out.append(trial("rank-sweep", f"LoRA-r{rank}", "lora", {"r": rank, "alpha": 2 * rank}, seed, 500,
                             accuracy=acc, val_accuracy=acc - 0.01, val_majority_rate=0.5,
                             trainable_params=13_824 * rank + 296_000))
    return out


def write_store(path, trials) -> str:
    with Store(path) as store:
        for spec, record in trials:
            store.mark_running(spec, record["trial_id"])
            store.finish(record["trial_id"], "ok", record)
    return str(path)


def records_of(trials) -> pd.DataFrame:
    return pd.DataFrame([r for _, r in trials])


@pytest.fixture
def full_store(tmp_path) -> str:
    return write_store(tmp_path / "known.db", tradeoff_trials() + sweep_trials())


# --- scores -----------------------------------------------------------------------------------------
REFS = {"chance_accuracy": np.array([0.5]), "chance_f1": np.array([1 / 3]), "chance_balanced": np.array([0.5]),
        "base_params": np.array([1e6]), "base_bytes": np.array([1e8]), "full_ft_flops": np.array([6e12]),
        "full_ft_memory_mb": np.array([1024.0])}


@pytest.mark.parametrize("column,values,expected", [
    ("val_accuracy", [0.75, 0.5, 0.4, 1.0], [0.5, 0.0, 0.0, 1.0]),  # from the majority rate (0.5) to 1, clipped
    ("val_f1", [2 / 3, 1 / 3], [0.5, 0.0]),  # from the constant predictor's macro F1 (1/3 for two balanced classes)
    ("ood_balanced_accuracy", [0.75, 0.5], [0.5, 0.0]),  # from 1/K to 1
    ("forgetting", [0.0, math.log(2) / 2, math.log(2), -0.1], [1.0, 0.5, 0.0, 1.0]),  # nats, up to ln 2 = 0
    ("trainable_params", [1.0, 1e3, 1e6], [1.0, 0.5, 0.0]),  # log scale from 1 to the base model
    ("adapter_bytes", [1e4, 1e8], [0.5, 0.0]),
    # costs: 0.5 at a fixed reference, 0.05 per doubling, clipped 1024x either side of it
    ("train_seconds", [600.0, 300.0, 1200.0, 0.1], [0.5, 0.55, 0.45, 1.0]),  # reference 600 s
    ("train_memory_mb", [1024.0, 256.0, 2 ** 21], [0.5, 0.6, 0.0]),  # full fine-tuning's 16 bytes/param
    ("flops_per_step", [6e12, 3e12], [0.5, 0.55]),  # full fine-tuning's 6 x params x tokens
    ("deployed_latency_ms", [10.0, 20.0], [0.5, 0.45]),  # reference 10 ms
    ("deployed_throughput_per_s", [100.0, 200.0, 50.0], [0.5, 0.55, 0.45]),  # reference 100 per s
])
def test_fixed_scales_by_hand(column, values, expected):
    assert scale_values(METRICS[column], np.array(values), REFS).tolist() == pytest.approx(expected)


def test_scores_inside_each_others_noise_are_near_equal():
    """Two methods 1 point apart on accuracy (well inside +-4 points on 500 rows) and 2% apart on cost:
    min-max made them 1 and 0; fixed scales keep them within a few hundredths on every dimension."""
    rows = [{"method": m, "seed": 0, "study": "tradeoff", "val_accuracy": acc, "val_f1": acc, "val_majority_rate": 0.5,
             "ood_balanced_accuracy": ood, "robustness_drop": drop, "train_seconds": t, "peak_rss_net_mb": mem,
             "flops_per_step": 2e11, "trainable_params": n, "base_params": BASE_PARAMS, "latency_p50_ms": lat,
             "throughput_per_s": 1000 / lat, "adapter_bytes": 4 * n}
            for m, acc, ood, drop, t, mem, n, lat in (("A", .80, .75, -.030, 100, 1000, 100_000, 10.0),
                                                     ("B", .81, .76, -.035, 102, 1020, 104_000, 10.2))]
    s = dimension_scores(pd.DataFrame(rows)).scores
    assert (s.loc["A"] - s.loc["B"]).abs().max() < 0.03
    assert s.notna().sum().sum() == 10  # five dimensions each (no data-efficiency study)


def test_dimension_scores_on_known_records():
    records = records_of(tradeoff_trials() + sweep_trials())
    dims = dimension_scores(records[records["study"] == "tradeoff"], records)
    s, m = dims.scores, dims.means
    for method in TRADEOFF:  # validation accuracy from 0.5 (majority rate) to 1, macro F1 from 1/3 to 1
        expected = ((m.loc[method, "val_accuracy"] - .5) / .5 + (m.loc[method, "val_f1"] - 1 / 3) / (2 / 3)) / 2
        assert s.loc[method, "performance"] == pytest.approx(expected)
    assert s["performance"].idxmax() == "Full" and s["performance"].idxmin() == "PrefixTuning-len32"
    # parameter efficiency: 1 - log(params) / log(base params); Full trains the whole model: 0
    assert s.loc["Full", "parameter_efficiency"] == 0.0
    assert s.loc["LoRA-r8", "parameter_efficiency"] == pytest.approx(1 - math.log(150e3) / math.log(BASE_PARAMS))
    # computational: mean over train_seconds, net training memory and flops of 0.5 - log2(value / reference) / 20,
    # the references 600 s, full fine-tuning's 16 bytes per parameter and 6 FLOPs per parameter per token
    def cost(value, ref):
        return 0.5 - math.log2(value / ref) / 20
    mem_ref, flops_ref = 16 * BASE_PARAMS / 2 ** 20, 6 * BASE_PARAMS * 2200
    assert s.loc["BitFit", "computational_efficiency"] == pytest.approx(
        (cost(152.5, 600) + cost(1050, mem_ref) + cost(2e11, flops_ref)) / 3)
    assert s.loc["Full", "computational_efficiency"] == pytest.approx(
        (cost(302.5, 600) + cost(2400, mem_ref) + cost(3e11, flops_ref)) / 3)
    assert s["computational_efficiency"].idxmax() == "BitFit" and s["computational_efficiency"].idxmin() == "Full"
    assert dims.metrics_used["computational_efficiency"] == ["train_seconds", "train_memory_mb",
                                                             "flops_per_step"]
    assert m.loc["Full", "train_memory_mb"] == 2400  # peak_rss_net_mb, not the raw 2750 MB peak
    # generalization: OOD balanced accuracy from 0.5; the robustness drop (first test rows) is never scored
    for method in TRADEOFF:
        expected = (m.loc[method, "ood_balanced_accuracy"] - .5) / .5
        assert s.loc[method, "generalization"] == pytest.approx(expected)
    assert dims.metrics_used["generalization"] == ["ood_balanced_accuracy"]
    assert s["generalization"].idxmax() == "Full"  # highest OOD figure
    # inference uses the merged latency when the method can merge: LoRA-r8 merged 10.2 ms vs best 10.0
    assert m.loc["LoRA-r8", "deployed_latency_ms"] == 10.2
    assert m.loc["PrefixTuning-len32", "deployed_latency_ms"] == 14.0
    # data efficiency exists only for the four methods of that study; AdaLoRA's is missing, not invented
    assert math.isnan(s.loc["AdaLoRA", "data_efficiency"])
    # from validation accuracy by size (the sweep's val_accuracy is its test accuracy - 0.01)
    assert s.loc["BitFit", "data_efficiency"] == pytest.approx(((.65 - .5) / .5 + (m.loc["BitFit", "val_normalized_auc"]
                                                                                   - .5) / .5) / 2)
    assert dims.missing() == {"data_efficiency": ["AdaLoRA"]}
    measured = s.to_numpy(float)[~s.isna().to_numpy()]
    assert measured.min() >= 0 and measured.max() <= 1


def test_a_dimension_measured_for_only_some_never_favours_the_others():
    """The issue's case: after `study all`, LoRA-r4 (no data-efficiency run) ranked first because its
    missing score was renormalised away while BitFit's measured one counted against it."""
    lora = TRADEOFF["LoRA-r8"]._replace(trainable=56_000, acc=.83, ood_bal=.72)  # worse than BitFit on the rest
    trials = tradeoff_trials({"LoRA-r4": lora}) + [
        trial("data-efficiency", "BitFit", "bitfit", {}, 0, size, accuracy=acc, val_accuracy=acc,
              val_majority_rate=0.5, trainable_params=100_000) for size, acc in ((100, .52), (1000, .60))]
    records = records_of([t for t in trials if t[1]["method"] in ("LoRA-r4", "BitFit")])
    records.loc[records["method"] == "BitFit", ["train_seconds", "peak_rss_net_mb"]] = [140, 1000]
    w = scenario_weights("limited-data")
    dims = dimension_scores(records[records["study"] == "tradeoff"], records)
    assert math.isnan(dims.scores.loc["LoRA-r4", "data_efficiency"])
    assert dims.scores.loc["BitFit", "data_efficiency"] < 0.2  # measured, and poor
    old_rule = {m: sum(dims.scores.loc[m, d] * w[d] for d in DIMENSION_NAMES if not math.isnan(dims.scores.loc[m, d]))
                / sum(w[d] for d in DIMENSION_NAMES if not math.isnan(dims.scores.loc[m, d])) for m in dims.scores.index}
    assert old_rule["LoRA-r4"] > old_rule["BitFit"]  # what renormalising per method did
    ws = weighted_scores(dims.scores, w)
    assert ws["coverage"].tolist() == pytest.approx([1 - w["data_efficiency"]] * 2)  # left out for both
    rec = recommend(records, w)
    assert rec.top == "BitFit"
    assert any("data_efficiency left out for every method: not measured for LoRA-r4" in n
               and "peftbench study data-efficiency --methods LoRA-r4" in n for n in rec.notes)
    only_bitfit = recommend(records[records["method"] == "BitFit"], w)  # every candidate has it: it counts
    assert only_bitfit.ranking["coverage"].tolist() == [1.0]


def test_no_data_efficiency_study_is_missing_and_weights_renormalise():
    records = records_of(tradeoff_trials())
    dims = dimension_scores(records)
    assert dims.scores["data_efficiency"].isna().all() and dims.metrics_used["data_efficiency"] == []
    w = scenario_weights("limited-data")
    ws = weighted_scores(dims.scores, w)
    assert ws["coverage"].tolist() == pytest.approx([1 - w["data_efficiency"]] * 5)
    manual = sum(dims.scores.loc["BitFit", d] * w[d] for d in DIMENSION_NAMES if d != "data_efficiency")
    assert ws.loc["BitFit", "score"] == pytest.approx(manual / (1 - w["data_efficiency"]))
    rec = recommend(records, w)
    assert any("data_efficiency was not measured" in n and "renormalised" in n for n in rec.notes)


def test_scoring_notes_cover_every_dimension():
    notes = scoring_notes()
    assert list(notes) == list(DIMENSION_NAMES)
    assert "log10" in notes["parameter_efficiency"] and "merged" in notes["inference_efficiency"]
    assert "peak_rss_net_mb" in notes["computational_efficiency"] and "val_majority_rate" in notes["performance"]
    assert "test rows" in notes["generalization"] and "ood_balanced_accuracy" in notes["generalization"]
    assert "validation" in notes["performance"] and "validation" in notes["data_efficiency"]
    assert "min-max" not in " ".join(notes.values())


# --- scenarios and weights --------------------------------------------------------------------------
def test_scenarios_are_the_seeds_ratings_normalised():
    assert set(SCENARIOS) == {"performance-critical", "resource-constrained", "limited-data",
                              "deployment-focused", "balanced"}
    w = scenario_weights("performance-critical")
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["performance"] == pytest.approx(10 / 30)
    assert w["computational_efficiency"] == pytest.approx(2 / 30)
    assert parse_weights("performance=3, inference_efficiency=1") == pytest.approx(
        {"parameter_efficiency": 0, "computational_efficiency": 0, "performance": .75, "generalization": 0,
         "data_efficiency": 0, "inference_efficiency": .25})


@pytest.mark.parametrize("text,phrase", [
    ("speed=3", "unknown dimension 'speed'"), ("performance=-1", "non-negative"),
    ("performance=0,generalization=0", "all weights are zero"), ("performance", "dimension=value"),
    ("performance=x", "must be a number"), ("performance=1,performance=2", "given twice"),
])
def test_bad_weights(text, phrase):
    with pytest.raises(PeftbenchError, match=phrase):
        parse_weights(text)


# --- Pareto -----------------------------------------------------------------------------------------
def test_pareto_ties_and_duplicates():
    pts = pd.DataFrame({"accuracy": [.90, .90, .85, .85, .80, .80, .95],
                        "params": [100, 200, 50, 50, 300, 300, 1000]},
                       index=["A", "B-tied-acc-more-params", "C", "C-dup", "D", "D-dup", "E"])
    table = pareto_table(pts, [Objective("accuracy", "max"), Objective("params", "min")])
    front = set(table.index[table["on_front"]])
    # B ties A on accuracy with more params: A strictly dominates it. C and its exact duplicate both stay
    # (neither dominates the other). D and its duplicate are both dominated (by A).
    assert front == {"A", "C", "C-dup", "E"}
    assert table.loc["B-tied-acc-more-params", "dominated_by"] == "A"
    assert not table.loc["D", "on_front"] and not table.loc["D-dup", "on_front"]


def test_pareto_drops_unmeasured_points_and_three_objectives():
    pts = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": [3.0, 1.0, 0.0], "c": [1.0, 1.0, 1.0]},
                       index=["x", "y", "z"])
    table = pareto_table(pts, [Objective("a", "max"), Objective("b", "max"), Objective("c", "min")])
    assert list(table.index) == ["x", "y"] and table["on_front"].all()


@pytest.mark.parametrize("text,phrase", [
    ("accuracy:max,nope:min", "unknown metric 'nope'"), ("accuracy:up,peak_rss_mb:min", "needs a direction"),
    ("accuracy:max", "at least two"), ("accuracy:max,accuracy:min", "named twice"),
])
def test_bad_objectives(text, phrase):
    with pytest.raises(PeftbenchError, match=phrase):
        parse_objectives(text, ["accuracy", "val_accuracy", "peak_rss_mb"])


# --- TOPSIS -----------------------------------------------------------------------------------------
def test_topsis_hand_computed():
    # x, y benefit; cost is a cost; weights .5/.25/.25. Column norms are all 5 (3-4-5 triangles), so
    # v(A) = (.3, .2, .15), v(B) = (.4, .15, .2); ideal (.4, .2, .15), worst (.3, .15, .2).
    # A: d+ = .1, d- = sqrt(.0025 + .0025) -> closeness 1/(1+sqrt 2) = sqrt2 - 1; B: 2 - sqrt 2.
    m = pd.DataFrame({"x": [3.0, 4.0], "y": [4.0, 3.0], "cost": [3.0, 4.0]}, index=["A", "B"])
    c = topsis(m, {"x": 2, "y": 1, "cost": 1}, {"x": "max", "y": "max", "cost": "min"})
    assert c["A"] == pytest.approx(math.sqrt(2) - 1) and c["B"] == pytest.approx(2 - math.sqrt(2))
    lone = topsis(m.iloc[:1], {"x": 1, "y": 1, "cost": 1}, {"x": "max", "y": "max", "cost": "min"})
    assert lone["A"] == 1.0


# --- recommender (library) --------------------------------------------------------------------------
def test_scenarios_change_the_top_method_and_limits_list_exclusions():
    records = records_of(tradeoff_trials() + sweep_trials())
    perf = recommend(records, scenario_weights("performance-critical"))
    lean = recommend(records, scenario_weights("resource-constrained"), Limits(max_memory_mb=1200))
    # LoRA-r8 and AdaLoRA are half a point apart on 500 rows: the top is not a clear win, and it says so
    assert {perf.top, *perf.tied} >= {"LoRA-r8", "AdaLoRA"} and "PrefixTuning-len32" not in perf.tied
    assert 0.2 < perf.ranking.loc["AdaLoRA", "p_best"] < 0.8 and 0.2 < perf.ranking.loc["LoRA-r8", "p_best"] < 0.8
    assert perf.ranking["p_best"].sum() == pytest.approx(1.0)
    assert lean.top == "BitFit" and set(lean.ranking.index) == {"BitFit", "PrefixTuning-len32"}
    assert lean.tied == ["BitFit"] and lean.ranking.loc["BitFit", "p_best"] > 0.95
    assert {(e.method, e.limit, e.metric, e.value) for e in lean.excluded} == {  # net of the 350 MB baseline
        ("Full", "--max-memory-mb 1200", "peak_rss_net_mb", 2400.0),
        ("LoRA-r8", "--max-memory-mb 1200", "peak_rss_net_mb", 1500.0),
        ("AdaLoRA", "--max-memory-mb 1200", "peak_rss_net_mb", 1600.0)}
    # limits only remove candidates: the remaining methods keep their dimension scores (data efficiency
    # counts in `lean` only because AdaLoRA, which lacks it, was removed by the limit)
    unlimited = recommend(records, scenario_weights("resource-constrained"))
    dims = list(DIMENSION_NAMES)
    assert lean.ranking.loc["BitFit", dims].tolist() == unlimited.ranking.loc["BitFit", dims].tolist()
    assert lean.ranking.loc["BitFit", "coverage"] == 1.0 and unlimited.ranking.loc["BitFit", "coverage"] < 1.0


def test_every_limit_and_advice_from_the_sweeps():
    records = records_of(tradeoff_trials() + sweep_trials())
    rec = recommend(records, scenario_weights("balanced"),
                    Limits(max_trainable_params=300_000, min_accuracy=0.85, max_train_seconds=250,
                           max_latency_ms=11))
    assert set(rec.ranking.index) == {"LoRA-r8", "BitFit"}  # AdaLoRA's 262.5 s mean train time is over 250
    broken = {(e.method, e.limit.split()[0]) for e in rec.excluded}
    assert ("Full", "--max-trainable-params") in broken and ("PrefixTuning-len32", "--min-accuracy") in broken
    assert ("AdaLoRA", "--max-train-seconds") in broken
    assert ("PrefixTuning-len32", "--max-latency-ms") in broken
    assert ("LoRA-r8", "--max-latency-ms") not in broken  # merged latency 10.2 ms counts
    rec = recommend(records, {"performance": 1.0}, Limits(max_trainable_params=200_000))
    advice = " ".join(rec.advice.values())
    assert "r=4 suffices" in advice and "paired t-test" in advice  # r2 is significantly worse, r4 is not
    assert "below 500 training examples prefer BitFit" in advice
    assert "Merge LoRA-r8" in advice and "13.00 -> 10.20 ms" in advice


def test_data_advice_reports_ties_as_ties():
    flat = [trial("data-efficiency", m, "lora", {}, 0, size, accuracy=.5 + .1 * (m == "A"), val_accuracy=.5)
            for m in ("A", "B") for size in (32, 64)]
    assert data_advice(records_of(flat)) == ("Data efficiency: A = B tie for the most accurate on validation at "
                                             "every training-set size tried (32-64: A = B)")


def test_topsis_column_in_recommendation():
    records = records_of(tradeoff_trials())
    rec = recommend(records, scenario_weights("balanced"), use_topsis=True)
    assert rec.ranking["topsis"].between(0, 1).all()
    assert any(n.startswith("TOPSIS criteria") for n in rec.notes)


# --- ranking confidence, collapse, setups ----------------------------------------------------------
def test_bootstrap_metrics_match_sklearn_on_every_resample():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(3)
    lab = rng.integers(0, 3, size=(4, 60))
    pred = np.where(rng.random((4, 60)) < .7, lab, rng.integers(0, 3, size=(4, 60)))
    assert macro_f1_rows(pred, lab).tolist() == pytest.approx(
        [f1_score(y, p, average="macro") for y, p in zip(lab, pred)])
    assert balanced_accuracy_rows(pred, lab).tolist() == pytest.approx(
        [balanced_accuracy_score(y, p) for y, p in zip(lab, pred)])


def test_paired_bootstrap_is_centred_on_the_stored_figures_and_repeatable():
    records = records_of(tradeoff_trials())
    methods = list(TRADEOFF)
    a = resample_metrics(records, methods, resamples=400, seed=7)
    b = resample_metrics(records, methods, resamples=400, seed=7)
    assert np.array_equal(a.values["val_accuracy"], b.values["val_accuracy"])  # fixed seed: same answer every time
    stored = records.groupby("method", sort=False)[["val_accuracy", "val_f1", "ood_balanced_accuracy"]].mean()
    for metric, tol in (("val_accuracy", .005), ("val_f1", .005), ("ood_balanced_accuracy", .01)):
        assert np.abs(a.values[metric].mean(axis=0) - stored.loc[methods, metric].to_numpy()).max() < tol
    from peftbench.analysis.timing_noise import KINDS

    costs = {c for cols in KINDS.values() for c in cols}  # timings and memory vary by their own noise
    assert set(a.values) - costs == {"val_accuracy", "val_f1", "ood_accuracy", "ood_balanced_accuracy"}  # never test
    spread = a.values["val_accuracy"].std(axis=0)
    assert ((spread > .008) & (spread < .025)).all()  # about sqrt(p(1-p)/500), plus the seeds


def _twin_records() -> pd.DataFrame:
    """One seed each: A and its identical twin, B 3 rows better, C 10 points worse."""
    def rows(method, preds):
        return {"method": method, "seed": 0, "study": "tradeoff", "trainable_params": 1000, "base_params": 10**6,
                "val_majority_rate": .5, "val_labels": encode(TEST_LABELS), "val_predictions": encode(preds),
                "val_accuracy": float(np.mean(preds == TEST_LABELS)), "val_f1": float(np.mean(preds == TEST_LABELS))}
    base = _flip(TEST_LABELS, np.arange(0, 100))  # 80% right
    twin = base.copy()
    better = _flip(base, np.arange(0, 3))  # 3 more rows right
    worse = _flip(base, np.arange(100, 150))  # 10 points worse
    return pd.DataFrame([rows("A", base), rows("A-twin", twin), rows("B", better), rows("C", worse)])


def test_p_best_pairs_rows_and_names_the_tied_set():
    """Two methods with identical predictions except 3 rows are tied; one 10 points worse is not. Paired
    resampling of the rows gives identical twins P(best) 0.5 each, never a spurious winner."""
    records, weights = _twin_records(), {"performance": 1.0}
    rec = rank(prepare(records, hierarchical=False), weights)
    assert rec.top == "B" and set(rec.tied) == {"B", "A", "A-twin"} and rec.tied[0] == "B"
    assert rec.ranking.loc["C", "p_best"] == 0.0
    assert rec.ranking.loc["A", "p_best"] == pytest.approx(rec.ranking.loc["A-twin", "p_best"])
    assert rec.resamples == 500 and any("P(best)" in n and "5%" in n for n in rec.notes)
    twins = rank(prepare(records[records["method"].isin(["A", "A-twin"])], hierarchical=False), weights)
    assert twins.ranking["p_best"].tolist() == pytest.approx([.5, .5]) and len(twins.tied) == 2


def test_one_seed_rankings_carry_seed_noise_by_default():
    """`recommend` gives a one-seed configuration seed noise (the race's hierarchical bootstrap), so a
    3-row edge on one seed is less certain than the rows alone say, and the note says how much."""
    records, weights = _twin_records(), {"performance": 1.0}
    rows_only = rank(prepare(records, hierarchical=False), weights)
    rec = recommend(records, weights)
    assert rec.top == "B" and rec.ranking.loc["B", "p_best"] < rows_only.ranking.loc["B", "p_best"] - 0.05
    assert rec.ranking.loc["C", "p_best"] < 0.01  # 10 points is still far outside the seed noise
    assert any(n.startswith("seed noise given to one-seed configurations") for n in rec.notes)
    assert not any(n.startswith("seed noise") for n in rows_only.notes)


def test_pareto_front_probability():
    records = records_of(tradeoff_trials())
    means = dimension_scores(records).means
    objectives = [Objective("val_accuracy", "max"), Objective("trainable_params", "min")]
    table = pareto_table(means, objectives)
    p = front_probability(table, objectives, resample_metrics(records, list(table.index)))
    assert table["on_front"].sum() == 4 and p["BitFit"] == 1.0  # fewest parameters: always on it
    assert 0.2 < p["AdaLoRA"] < 0.9  # half a point above LoRA-r8, which has fewer parameters
    assert 0.5 < p["Full"] < 1.0  # 2.5 points above AdaLoRA on 500 rows: usually, not always, the best
    assert p["PrefixTuning-len32"] == 0.0  # 9 points below LoRA-r8 and bigger: never on it


def test_collapsed_trials_are_left_out_unless_asked():
    records = records_of(tradeoff_trials())
    ada = records["method"] == "AdaLoRA"
    records.loc[ada, "collapsed"] = True
    records.loc[ada, "collapse_reason"] = "97% of validation predictions are class 0"
    rec = recommend(records, scenario_weights("performance-critical"))
    assert "AdaLoRA" not in rec.ranking.index and "AdaLoRA" not in rec.tied
    assert any("left out as collapsed" in n and "AdaLoRA (seed 0): 97% of validation predictions are class 0"
               in n for n in rec.notes)
    kept = recommend(records, scenario_weights("performance-critical"), include_collapsed=True)
    assert "AdaLoRA" in kept.ranking.index and any("collapsed trials included" in n for n in kept.notes)


def mixed_setups() -> pd.DataFrame:
    a = records_of(tradeoff_trials()).assign(setup="a1b2", setup_label="MiniLM-L6 / embedded / 3 epochs",
                                             model="embedded")
    b = records_of(tradeoff_trials()).assign(setup="c3d4", setup_label="bert-base / imdb / 3 epochs",
                                             model="bert-base-uncased")
    b["val_accuracy"] = 1 - b["val_accuracy"]  # a different task: averaging it with `a` would be nonsense
    b["trial_id"] = b["trial_id"] + "-b"
    return pd.concat([a, b], ignore_index=True)


def test_a_mixed_store_is_refused_until_a_setup_is_named():
    records = mixed_setups()
    with pytest.raises(PeftbenchError) as err:
        recommend(records, scenario_weights("balanced"))
    line = str(err.value)
    assert "\n" not in line and "2 setups" in line and "--setup KEY" in line and "--model" in line
    assert "a1b2 (MiniLM-L6 / embedded / 3 epochs)" in line and "c3d4 (bert-base / imdb / 3 epochs)" in line
    one = recommend(records, scenario_weights("balanced"), setup="a1b2")
    alone = recommend(records[records["setup"] == "a1b2"], scenario_weights("balanced"))
    assert one.ranking["score"].tolist() == alone.ranking["score"].tolist()
    assert one.setup_label == "MiniLM-L6 / embedded / 3 epochs"
    by_model = recommend(records, scenario_weights("balanced"), model="bert-base-uncased")
    assert by_model.setup_label == "bert-base / imdb / 3 epochs"
    with pytest.raises(PeftbenchError, match="no finished trials with --setup zzz"):
        recommend(records, scenario_weights("balanced"), setup="zzz")


def test_pruned_and_unchosen_candidates_never_score(monkeypatch):
    from peftbench.stats import summary as stats

    records = records_of(tradeoff_trials())
    pruned = records[records["method"] == "BitFit"].assign(method="LoRA-r8", status="pruned", val_accuracy=.99)
    records = pd.concat([records.assign(status="ok"), pruned], ignore_index=True)
    ranked = recommend(records, {"performance": 1.0})
    assert ranked.ranking.loc["LoRA-r8", "performance"] < .9  # the pruned row's 0.99 never counts
    monkeypatch.setattr(stats, "reportable", lambda r: r[r["method"] != "Full"])
    assert "Full" not in recommend(records, {"performance": 1.0}).ranking.index  # stats.reportable decides


# --- the CLI ----------------------------------------------------------------------------------------
def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m peftbench.cli ...` in a fresh process (the path where cli.py is __main__). The other
    commands here run through conftest's run_cli_main: the same main(), without an interpreter start each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "peftbench.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def test_cli_recommend_scenarios_limits_and_pareto(full_store):
    perf = run_cli_main("recommend", "--db", full_store, "--scenario", "performance-critical", check=False)
    assert perf.returncode == 0, perf.stderr
    top = "LoRA-r8" if "Recommended: LoRA-r8 (P(best) 0." in perf.stdout else "AdaLoRA"
    assert f"Recommended: {top} (P(best) 0." in perf.stdout and "P(best)" in perf.stdout
    tied_line = next(ln for ln in perf.stdout.splitlines() if ln.startswith("Statistically tied with it:"))
    assert ({"LoRA-r8", "AdaLoRA"} - {top}).pop() in tied_line and "PrefixTuning" not in tied_line
    lean = run_cli_main("recommend", "--db", full_store, "--scenario", "resource-constrained",
                        "--max-memory-mb", "1200", "--topsis", check=False)
    assert lean.returncode == 0, lean.stderr
    assert "Recommended: BitFit" in lean.stdout and "TOPSIS" in lean.stdout
    assert "Statistically tied with it: none" in lean.stdout
    excluded = lean.stdout.split("Excluded by your limits", 1)[1]
    for method, value in (("Full", "2400"), ("LoRA-r8", "1500"), ("AdaLoRA", "1600")):
        line = next(ln for ln in excluded.splitlines() if f" {method} " in ln)
        assert "--max-memory-mb 1200" in line and "peak_rss_net_mb" in line and value in line
    assert "r=4 suffices" in lean.stdout
    front = run_cli_main("pareto", "--db", full_store, "--objectives",
                         "accuracy:max,peak_rss_net_mb:min,trainable_params:min", check=False)
    assert front.returncode == 0, front.stderr
    assert "dominated by" in front.stdout and "PrefixTuning-len32" in front.stdout
    assert "P(on front)" in front.stdout and "paired bootstrap" in front.stdout


def test_cli_recommend_all_scenarios_one_line_each(full_store):
    proc = run_cli_main("recommend", "--db", full_store, "--all-scenarios", "--max-memory-mb", "2000",
                        check=False)
    assert proc.returncode == 0, proc.stderr
    lines = {name: next(ln for ln in proc.stdout.splitlines() if f" {name} " in ln) for name in SCENARIOS}
    for name, line in lines.items():
        assert any(m in line for m in TRADEOFF) and "Full" not in line, (name, line)  # Full is over 2000 MB
        assert re.search(r" (0\.\d\d|1\.00) ", line), line  # P(best)
    assert "LoRA-r8" in lines["performance-critical"] and "AdaLoRA" in lines["performance-critical"]
    clash = run_cli_main("recommend", "--db", full_store, "--all-scenarios", "--scenario", "balanced",
                         check=False)
    assert clash.returncode == 2 and "--all-scenarios" in clash.stderr


def test_cli_bad_input_one_line_nonzero(full_store, tmp_path, capsys, monkeypatch):
    """peftbench.cli.main in-process (same code path as the entry point, without a process per case)."""
    from peftbench.cli import app as cli

    empty = tmp_path / "empty.db"
    Store(empty).close()
    cases = [
        (["recommend", "--db", full_store, "--scenario", "speedy"], "unknown scenario 'speedy'"),
        (["recommend", "--db", full_store, "--weights", "speed=2"], "unknown dimension 'speed'"),
        (["recommend", "--db", full_store, "--weights", "performance=-2"], "non-negative"),
        (["recommend", "--db", full_store, "--weights", "performance=1", "--scenario", "balanced"],
         "only one of"),
        (["recommend", "--db", full_store, "--max-memory-mb", "-5"],
         "--max-memory-mb must be a non-negative"),
        (["recommend", "--db", full_store, "--max-memory-mb", "10"], "no method meets every limit"),
        (["recommend", "--db", full_store, "--study", "nope"], "no finished trials in study 'nope'"),
        (["pareto", "--db", full_store, "--objectives", "accuracy:max,bogus_metric:min"],
         "unknown metric 'bogus_metric'"),
        (["pareto", "--db", full_store], "--objectives is required"),
        (["recommend", "--db", str(empty)], f"no finished trials in {empty}"),
        (["report", "--db", str(empty), "--output", str(tmp_path / "r.html")], "no finished trials"),
    ]
    for argv, phrase in cases:
        monkeypatch.setattr(sys, "argv", ["peftbench", *argv])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (argv, err)
        assert phrase in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "r.html").exists()


def test_cli_interactive_prompts_and_normalises(full_store):
    proc = run_cli("recommend", "--db", full_store, "--interactive", stdin="0\n0\n11\n10\n0\n0\n0\n")
    assert proc.returncode == 0, proc.stderr
    assert "answer with a whole number from 0 to 10" in proc.stderr  # 11 was refused and asked again
    assert "weights: performance 1.00" in proc.stdout and "Recommended: Full" in proc.stdout
