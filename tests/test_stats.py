"""Statistics on known numbers."""

import math

import pandas as pd
import pytest

from peftbench.stats import aggregate, paired_test, summarize


def test_summary_known_values():
    s = summarize([0.80, 0.82, 0.84])
    assert s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)
    # t(0.975, df=2) = 4.302653; half-width = 4.302653 * 0.02 / sqrt(3)
    assert s.half_width == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)


def test_single_value_has_no_interval():
    s = summarize([0.7])
    assert s.mean == 0.7 and math.isnan(s.ci_low) and s.n == 1


def test_paired_test_known_values():
    # differences -0.05, -0.04, -0.06: mean -0.05, sd 0.01, t = -8.66, df 2 -> p = 0.01307
    t = paired_test({0: 0.75, 1: 0.78, 2: 0.74}, {0: 0.80, 1: 0.82, 2: 0.80})
    assert t.mean_difference == pytest.approx(-0.05)
    assert t.p_value == pytest.approx(0.013072, rel=1e-3)
    assert t.significant
    assert paired_test({0: 0.7}, {0: 0.8}) is None  # one pair: no test claimed
    noisy = paired_test({0: 0.80, 1: 0.70, 2: 0.90}, {0: 0.78, 1: 0.79, 2: 0.81})
    assert not noisy.significant


def test_aggregate_marks_against_full():
    rows = []
    for seed, (full, lora) in enumerate([(0.80, 0.75), (0.82, 0.78), (0.80, 0.74)]):
        rows.append({"study": "s", "method": "Full", "train_size": 100, "seed": seed, "accuracy": full})
        rows.append({"study": "s", "method": "LoRA", "train_size": 100, "seed": seed, "accuracy": lora})
    agg = aggregate(pd.DataFrame(rows), ["accuracy"]).set_index("method")
    assert agg.loc["LoRA", "significant_vs_baseline"]
    assert agg.loc["LoRA", "diff_vs_baseline"] == pytest.approx(-0.05)
    assert agg.loc["Full", "accuracy_n"] == 3
