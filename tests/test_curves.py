"""Data-efficiency curves and the smallest sufficient LoRA rank, on numbers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from peftbench.analysis.curves import (
    accuracy_by_size,
    best_by_size,
    data_efficiency_summary,
    normalized_auc,
    one_sided_worse_p,
    rank_curve,
    smallest_sufficient_rank,
)


def sized(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    """Validation accuracy = test accuracy unless a test says otherwise (each choice reads validation)."""
    frame = pd.DataFrame(rows, columns=["method", "train_size", "seed", "accuracy"])
    return frame.assign(val_accuracy=frame["accuracy"])


def ranked(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": f"LoRA-r{r}", "lora_r": r, "seed": s, "accuracy": a, "val_accuracy": a,
                          "trainable_params": 1000 * r, "trainable_pct": 0.01 * r} for r, s, a in rows])


def poisoned(frame: pd.DataFrame, key: str, worst_becomes_best) -> pd.DataFrame:
    """The test split turned upside down: the worst by validation gets the best test accuracy."""
    out = frame.copy()
    out["accuracy"] = 1.0 - out["val_accuracy"]
    out.loc[worst_becomes_best(out), "accuracy"] = 0.999
    return out


def test_normalized_auc_by_hand():
    # two sizes: a straight line, so the normalised area is the mean of the two ends
    assert normalized_auc([100, 1000], [.6, .8]) == pytest.approx(.7)
    # three sizes: trapezoids over ln 2.5 and ln 4, divided by ln 10; input order does not matter
    expected = (math.log(2.5) * (.5 + .7) / 2 + math.log(4) * (.7 + .8) / 2) / math.log(10)
    assert normalized_auc([1000, 100, 250], [.8, .5, .7]) == pytest.approx(expected)
    assert normalized_auc([100, 1000], [.9, .9]) == pytest.approx(.9)  # flat curve: its own level
    assert math.isnan(normalized_auc([100], [.8]))


def test_accuracy_by_size_means_seeds_with_t_interval():
    curves = accuracy_by_size(sized([("A", 100, 0, .6), ("A", 100, 1, .7), ("A", 200, 0, .8)]))
    first = curves.iloc[0]
    assert first["accuracy"] == pytest.approx(.65) and first["seeds"] == 2
    # t(0.975, 1) * sd / sqrt(2), sd of (.6, .7) = .1 / sqrt(2)
    assert first["ci_half_width"] == pytest.approx(12.7062 * (.1 / math.sqrt(2)) / math.sqrt(2), rel=1e-4)
    assert math.isnan(curves.iloc[1]["ci_half_width"])


def test_data_efficiency_summary_uses_sizes_every_method_has():
    rows = sized([("A", 100, 0, .6), ("A", 1000, 0, .8), ("A", 5000, 0, .9),
                  ("B", 100, 0, .7), ("B", 1000, 0, .75)])  # B has no 5000 run: A's 5000 is left out too
    summary = data_efficiency_summary(rows)
    assert summary.loc["A", "accuracy_at_smallest_size"] == .6 and summary.loc["B", "smallest_size"] == 100
    assert summary.loc["A", "normalized_auc"] == pytest.approx(.7)
    assert summary.loc["B", "normalized_auc"] == pytest.approx(.725)
    assert summary.loc["A", "largest_size"] == 1000 and summary.loc["A", "sizes"] == 2
    assert data_efficiency_summary(sized([])).empty


def test_best_by_size_finds_the_crossover():
    rows = sized([("Full", 100, 0, .55), ("Full", 1000, 0, .88),
                  ("BitFit", 100, 0, .66), ("BitFit", 1000, 0, .83)])
    best = best_by_size(rows)
    assert best[["train_size", "method", "tied"]].values.tolist() == [[100, "BitFit", False],
                                                                     [1000, "Full", False]]
    tie = best_by_size(sized([("Full", 100, 0, .5), ("BitFit", 100, 0, .5), ("LoRA", 100, 0, .4)]))
    assert tie[["method", "tied"]].values.tolist() == [["BitFit = Full", True]]  # a tie is not a win


def test_rank_within_tolerance_with_one_seed():
    rows = ranked([(1, 0, .80), (2, 0, .84), (4, 0, .845), (8, 0, .855), (16, 0, .85)])
    choice = smallest_sufficient_rank(rows)  # best r=8 (.855); r=4 at exactly .855 - .01 counts
    assert (choice.rank, choice.best_rank) == (4, 8)
    assert choice.trainable_params == 4000 and choice.best_trainable_params == 8000
    assert choice.criterion == "within 0.01 of the best on validation"
    assert smallest_sufficient_rank(rows, tolerance=0.001).rank == 8
    assert smallest_sufficient_rank(rows, tolerance=0.001).criterion == "it is the most accurate rank on validation"
    assert smallest_sufficient_rank(rows, tolerance=0.1).rank == 1
    assert smallest_sufficient_rank(ranked([])) is None


def test_rank_with_seeds_uses_a_one_sided_paired_test():
    rows = ranked([(2, 0, .84), (2, 1, .845), (4, 0, .860), (4, 1, .870), (8, 0, .866), (8, 1, .872)])
    choice = smallest_sufficient_rank(rows)
    # r=4 - r=8 differences (-.006, -.002): t = -.004 / (.002828 / sqrt 2) = -2 with 1 df (Cauchy), so the
    # one-sided p = 1/2 + atan(-2)/pi = 0.1476: not significantly worse. r=2 (-.026, -.027) is.
    assert choice.rank == 4 and "paired" in choice.criterion and "p=0.148" in choice.criterion
    p2, kind = one_sided_worse_p({0: .84, 1: .845}, {0: .866, 1: .872})
    assert kind == "paired" and p2 < 0.05
    p4, _ = one_sided_worse_p({0: .860, 1: .870}, {0: .866, 1: .872})
    assert p4 == pytest.approx(0.5 + math.atan(-2) / math.pi)


def test_welch_when_seeds_do_not_pair_and_zero_variance_cases():
    cand, best = {0: .80, 1: .82}, {2: .85, 3: .86}
    p, kind = one_sided_worse_p(cand, best)
    assert kind == "Welch"
    welch = sps.ttest_ind([.80, .82], [.85, .86], equal_var=False, alternative="less")
    assert p == pytest.approx(welch.pvalue)
    assert one_sided_worse_p({0: .8, 1: .8}, {0: .9, 1: .9}) == (0.0, "paired")  # always 0.1 worse
    assert one_sided_worse_p({0: .9, 1: .9}, {0: .9, 1: .9}) == (1.0, "paired")  # identical


def test_rank_curve_columns():
    curve = rank_curve(ranked([(4, 0, .8), (4, 1, .9), (1, 0, .7)]))
    assert curve["rank"].tolist() == [1, 4]
    assert curve.loc[1, "accuracy"] == pytest.approx(.85) and curve.loc[1, "by_seed"] == {0: .8, 1: .9}
    assert curve.loc[1, "trainable_pct"] == pytest.approx(.04)


# --- leak tests: the test split never chooses --------------------------------------------------------
def test_rank_choice_does_not_move_when_the_test_split_is_poisoned():
    rows = ranked([(1, 0, .80), (2, 0, .84), (4, 0, .845), (8, 0, .855), (16, 0, .85)])
    clean = smallest_sufficient_rank(rows)
    bad = poisoned(rows, "lora_r", lambda f: f["lora_r"] == 1)  # r=1 (worst on validation) best on test
    choice = smallest_sufficient_rank(bad)
    assert (choice.rank, choice.best_rank, choice.criterion) == (clean.rank, clean.best_rank, clean.criterion)
    assert choice.accuracy == pytest.approx(1 - .845)  # the test figure is still reported, as it is
    assert choice.val_accuracy == pytest.approx(.845) and choice.best_val_accuracy == pytest.approx(.855)
    seeds = ranked([(2, 0, .84), (2, 1, .845), (4, 0, .860), (4, 1, .870), (8, 0, .866), (8, 1, .872)])
    assert smallest_sufficient_rank(poisoned(seeds, "lora_r", lambda f: f["lora_r"] == 2)).rank == 4
    assert smallest_sufficient_rank(ranked([]).assign(val_accuracy=[])) is None
    no_val = ranked([(4, 0, .86), (8, 0, .87)]).drop(columns="val_accuracy")
    assert smallest_sufficient_rank(no_val) is None  # no validation figure: no choice, never test


def test_data_efficiency_winner_does_not_move_when_the_test_split_is_poisoned():
    rows = sized([("Full", 100, 0, .55), ("Full", 1000, 0, .88), ("BitFit", 100, 0, .66), ("BitFit", 1000, 0, .83),
                  ("Prefix", 100, 0, .50), ("Prefix", 1000, 0, .70)])
    clean = best_by_size(rows)
    bad = best_by_size(poisoned(rows, "method", lambda f: f["method"] == "Prefix"))
    assert bad[["train_size", "method", "tied"]].values.tolist() == clean[["train_size", "method",
                                                                          "tied"]].values.tolist()
    assert bad["val_accuracy"].tolist() == clean["val_accuracy"].tolist()
    assert bad["accuracy"].tolist() == pytest.approx([1 - .66, 1 - .88])  # the winners' test figures, reported


def test_one_seed_curve_points_get_a_row_bootstrap_interval():
    from peftbench.stats.predictions import encode

    labels = [0, 1] * 200
    preds = labels[:320] + [1 - v for v in labels[320:]]  # 80% right on 400 rows
    rows = sized([("A", 100, 0, .8)]).assign(test_predictions=encode(preds), test_labels=encode(labels))
    half = accuracy_by_size(rows)["ci_half_width"].iloc[0]
    assert half == pytest.approx(1.96 * math.sqrt(.8 * .2 / 400), rel=0.15)  # the normal approximation
    assert math.isnan(accuracy_by_size(sized([("A", 100, 0, .8)]))["ci_half_width"].iloc[0])
