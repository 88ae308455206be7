"""Cost scores on a fixed reference, and timings a reviewer would not trust kept out of the scores.

The stored records are test_analysis.py's known store (two seeds per method, per-row predictions, the
data-efficiency sweep), so every one of the six dimensions is scored."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli_main
from test_analysis import TRADEOFF, Profile, records_of, sweep_trials, tradeoff_trials, write_store

from peftbench.analysis.recommend import recommend
from peftbench.analysis.scenarios import scenario_weights
from peftbench.analysis.scores import DIMENSION_NAMES, dimension_scores
from peftbench.measure.inference import timed_cleanly

# Cheaper than every stored method on every cost: on the old "cheapest measured / value" scale, adding it
# lowered everyone else's time, memory, FLOPs, latency and throughput scores.
CHEAP = Profile("lora", {"r": 1, "alpha": 2}, 20_000, .84, 40, 300, 1.0e11, .72, -6.0, 4.0, 3.5, 900, 1000, 90e3)


def _scores(records: pd.DataFrame) -> pd.DataFrame:
    return dimension_scores(records[records["study"] == "tradeoff"], records).scores


def test_no_score_moves_when_a_method_is_added_or_removed():
    records = records_of(tradeoff_trials() + sweep_trials())
    base = _scores(records)
    assert base.notna().any().all()  # all six dimensions scored for someone
    assert base["data_efficiency"].notna().sum() >= 3 and base["inference_efficiency"].notna().all()
    wider = _scores(records_of(tradeoff_trials({"LoRA-r1": CHEAP}) + sweep_trials()))
    # the newcomer is the cheapest on every cost, so the old min-over-methods scale would have moved the rest
    m = dimension_scores(records_of(tradeoff_trials({"LoRA-r1": CHEAP}))).means
    for col in ("train_seconds", "train_memory_mb", "flops_per_step", "deployed_latency_ms"):
        assert m[col].idxmin() == "LoRA-r1"
    assert m["deployed_throughput_per_s"].idxmax() == "LoRA-r1"
    pd.testing.assert_frame_equal(wider.loc[base.index], base)
    for gone in TRADEOFF:
        fewer = _scores(records[records["method"] != gone])
        pd.testing.assert_frame_equal(fewer, base.drop(index=gone), check_exact=True)


def test_the_old_scale_would_have_moved():
    """What the test above guards against: cheapest / value gives BitFit 1.0 on train time alone, and less
    once a cheaper method joins. The fixed scale gives it the same figure both times."""
    alone = records_of(tradeoff_trials())
    joined = records_of(tradeoff_trials({"LoRA-r1": CHEAP}))

    def old(records, method):
        t = dimension_scores(records).means["train_seconds"]
        return t.min() / t[method]

    assert old(alone, "BitFit") == 1.0 and old(joined, "BitFit") < 0.3
    new = [dimension_scores(r).scores.loc["BitFit", "computational_efficiency"] for r in (alone, joined)]
    assert new[0] == new[1]


def test_costs_still_separate_methods_by_their_ratio():
    s = dimension_scores(records_of(tradeoff_trials())).scores["computational_efficiency"]
    # BitFit: 152.5 s, 1050 MB, 2e11 FLOPs; Full: 302.5 s, 2400 MB, 3e11: 0.05 per doubling, averaged
    expected = (math.log2(302.5 / 152.5) + math.log2(2400 / 1050) + math.log2(3e11 / 2e11)) / 3 * 0.05
    assert s["BitFit"] - s["Full"] == pytest.approx(expected)
    assert 0 < s["Full"] < s["BitFit"] < 1  # nothing clipped


def rec_dims(records: pd.DataFrame) -> dict[str, list[str]]:
    return dimension_scores(records).metrics_used


def _contended(records: pd.DataFrame, method: str, seeds, column: str, note: str) -> pd.DataFrame:
    out = records.copy()
    rows = (out["method"] == method) & out["seed"].isin(seeds)
    out[column] = False
    out[column] = out[column].astype(object)
    out.loc[rows, column] = True
    out[column.replace("contended", "note")] = None
    out.loc[rows, column.replace("contended", "note")] = note
    return out


def test_a_contended_latency_is_left_out_and_said():
    records = records_of(tradeoff_trials())
    note = "other work shared the machine: other processes kept 1.3 of 2 cores busy"
    # BitFit (cannot merge): its seed-1 latency was timed under contention, and doubled by it
    one = _contended(records, "BitFit", [1], "inference_timing_contended", note)
    one.loc[(one["method"] == "BitFit") & (one["seed"] == 1), "latency_p50_ms"] = 20.0
    dims = dimension_scores(one)
    assert dims.means.loc["BitFit", "deployed_latency_ms"] == 10.0  # the clean seed only, not (10 + 20) / 2
    assert any("latency_p50_ms (1/2)" in n and "1.3 of 2 cores" in n
               for n in dims.timing_notes["BitFit"])
    # every BitFit latency contended: it lacks the metric, so latency is left out for all, with a note
    both = _contended(records, "BitFit", [0, 1], "inference_timing_contended", note)
    rec = recommend(both, scenario_weights("deployment-focused"), resamples=50)
    assert "deployed_latency_ms" not in rec_dims(both)["inference_efficiency"] and any(
        "deployed_latency_ms left out for every method, not measured for BitFit" in n for n in rec.notes)
    assert any("latency_p50_ms, throughput_per_s of BitFit left out (every trial" in n for n in rec.notes)
    assert any(n.startswith("timings: contended timings are left out") for n in rec.notes)
    clean = dimension_scores(records).scores.loc["Full", "inference_efficiency"]
    assert dimension_scores(both).scores.loc["Full", "inference_efficiency"] != clean  # latency left out
    # a contended training time: the same rule
    slow = _contended(records, "Full", [0], "timing_contended", note)
    assert dimension_scores(slow).means.loc["Full", "train_seconds"] == 305.0  # seed 1's 300 + 5


def test_a_merged_model_whose_outputs_disagree_is_deployed_unmerged():
    records = records_of(tradeoff_trials())
    lora = records["method"] == "LoRA-r8"
    assert dimension_scores(records).means.loc["LoRA-r8", "deployed_latency_ms"] == 10.2  # merged, agreeing
    off = records.copy()
    off.loc[lora, "merge_max_logit_diff"] = 0.05  # logits of scale 4: 0.05 > 1e-3 x 4
    dims = dimension_scores(off)
    assert dims.means.loc["LoRA-r8", "deployed_latency_ms"] == 13.0  # the unmerged figure
    assert dims.means.loc["LoRA-r8", "deployed_throughput_per_s"] == 240
    assert dims.means.loc["AdaLoRA", "deployed_latency_ms"] == 10.3  # its merge still agrees
    assert any("merged model's outputs do not match" in n for n in dims.timing_notes["LoRA-r8"])
    within = records.copy()
    within.loc[lora, "merge_max_logit_diff"] = 0.003  # inside 1e-3 x 4
    assert dimension_scores(within).means.loc["LoRA-r8", "deployed_latency_ms"] == 10.2
    unchecked = records.drop(columns=["merge_max_logit_diff"])  # a merge nobody checked does not count
    assert dimension_scores(unchecked).means.loc["LoRA-r8", "deployed_latency_ms"] == 13.0
    # generate: identical greedy tokens, else unmerged
    gen = records.copy()
    gen["merge_same_greedy"] = None
    gen["merge_same_greedy"] = gen["merge_same_greedy"].astype(object)
    gen.loc[lora, "merge_same_greedy"] = False
    gen.loc[records["method"] == "AdaLoRA", "merge_same_greedy"] = True
    gen = gen.drop(columns=["merge_max_logit_diff"])
    means = dimension_scores(gen).means
    assert means.loc["LoRA-r8", "deployed_latency_ms"] == 13.0 and means.loc["AdaLoRA", "deployed_latency_ms"] == 10.3


def test_inference_timing_carries_its_own_check():
    import torch

    out = timed_cleanly(lambda: {"latency_p50_ms": 1.0}, torch.device("cpu"), "inference")
    assert out["latency_p50_ms"] == 1.0 and isinstance(out["inference_timing_contended"], bool)
    assert (out["inference_timing_note"] is None) == (not out["inference_timing_contended"])
    gpu = timed_cleanly(lambda: {}, torch.device("cuda"), "merged")  # not checked off CPU, as training time
    assert gpu["merged_timing_contended"] is False and gpu["merged_timing_note"] is None
    others = out["inference_other_cores_busy"]
    assert others is None or (np.isfinite(others) and others >= 0)


def test_pareto_leaves_a_contended_latency_out_and_says_why(tmp_path):
    trials = tradeoff_trials()
    for _, rec in trials:
        rec["inference_timing_contended"] = rec["method"] == "BitFit"
        rec["inference_timing_note"] = "other work shared the machine: load average 4.2 on 2 cores" \
            if rec["method"] == "BitFit" else None
    db = write_store(tmp_path / "contended.db", trials)
    out = run_cli_main("pareto", "--db", db, "--objectives", "accuracy:max,latency_p50_ms:min", check=False)
    assert out.returncode == 0, out.stderr
    flat = " ".join(out.stdout.split())
    assert "latency_p50_ms, throughput_per_s of BitFit left out (every trial" in flat and "load average 4.2" in flat
    assert "left out, an objective was not measured: BitFit" in out.stdout
