"""Statistics on known numbers: intervals from per-row predictions, the paired test, Holm, reportable()."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from peftbench.stats.intervals import (
    holm,
    make_balanced_accuracy,
    make_macro_f1,
    metric_interval,
    paired_row_test,
)
from peftbench.stats.predictions import encode
from peftbench.stats.summary import aggregate, paired_test, reportable, summarize


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


# --- intervals from per-row predictions -----------------------------------------------------------------
def _rec(labels, preds, **extra):
    return {"test_labels": encode(labels), "test_predictions": encode(preds), **extra}


def _at(accuracy: float, n: int = 800, seed: int = 0):
    """Labels 0/1 alternating, predictions right on exactly accuracy*n rows (spread by a seeded shuffle)."""
    y = np.array([0, 1] * (n // 2))
    wrong = np.random.default_rng(seed).permutation(n)[: round((1 - accuracy) * n)]
    p = y.copy()
    p[wrong] = 1 - p[wrong]
    return y, p


def test_bootstrap_interval_one_seed_matches_the_binomial_half_width():
    y, p = _at(0.80)
    iv = metric_interval([_rec(y, p)], "accuracy")
    binomial = 1.96 * math.sqrt(0.8 * 0.2 / 800)  # 0.0277
    assert iv.mean == pytest.approx(0.80)
    assert iv.half_width == pytest.approx(binomial, rel=0.12)
    assert iv.ci_low < 0.80 < iv.ci_high
    assert metric_interval([_rec(y, p)], "accuracy") == iv  # fixed random state: same store, same interval
    perfect = metric_interval([_rec(y[:80], y[:80])], "accuracy")  # no resample differs: Wilson instead
    assert perfect.mean == 1.0 and perfect.ci_high == pytest.approx(1.0) and 0.9 < perfect.ci_low < 0.97


def test_vectorised_metrics_equal_sklearn():
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    p[:100] = y[:100]
    macro = f1_score(y, p, average="macro")
    assert float(make_macro_f1(np.unique(np.r_[y, p]))(y, p)) == pytest.approx(macro)
    assert float(make_balanced_accuracy(3)(y, p)) == pytest.approx(balanced_accuracy_score(y, p))
    batch = np.stack([y, y]), np.stack([p, y])  # resamples on leading axes
    assert make_macro_f1(np.arange(3))(*batch).tolist() == pytest.approx([macro, 1.0])


def test_ood_balanced_accuracy_of_a_constant_predictor_is_one_half():
    y = np.array([0] * 210 + [1] * 90)  # a 70/30 set: plain accuracy of "always 0" would read 0.70
    iv = metric_interval([{"ood_labels": encode(y), "ood_predictions": encode(np.zeros(300, int))}],
                         "ood_balanced_accuracy")
    assert iv.mean == pytest.approx(0.5)


def test_robustness_drop_is_paired_over_the_perturbed_rows():
    y = np.array([0, 1] * 400)
    clean = y.copy()  # all 400 perturbed rows right when clean
    typo, swap = y[:400].copy(), y[:400].copy()
    typo[:40] = 1 - typo[:40]  # 10% wrong under typos
    swap[:80] = 1 - swap[:80]  # 20% wrong under swaps
    rec = _rec(y, clean, perturbation_rows=400, perturbed_typo_predictions=encode(typo),
               perturbed_swap_predictions=encode(swap))
    iv = metric_interval([rec], "robustness_drop")
    assert iv.mean == pytest.approx(-0.15)  # mean of the per-kind drops
    assert iv.ci_high < 0 and iv.half_width < 0.05
    assert metric_interval([_rec(y, clean)], "robustness_drop") is None  # no perturbations: no figure


def test_several_seeds_add_their_spread_to_the_rows():
    y, p = _at(0.80)
    same = metric_interval([_rec(y, p)] * 3, "accuracy")
    one = metric_interval([_rec(y, p)], "accuracy")
    assert same.n_seeds == 3 and same.half_width == pytest.approx(one.half_width, rel=0.2)  # no seed spread
    spread = metric_interval([_rec(*_at(a, seed=i)) for i, a in enumerate((0.70, 0.80, 0.90))], "accuracy")
    assert spread.mean == pytest.approx(0.80)
    # the seed spread (sd 0.1 over 3 seeds) dominates: about t(2) * 0.1 / sqrt(3) = 0.25
    assert spread.half_width > 0.15


def test_holm_known_values():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, None]) == [0.2, None]


def test_paired_row_test_equals_ttest_on_the_row_differences():
    y, full = _at(0.80)
    _, lora = _at(0.74, seed=5)
    test = paired_row_test({0: _rec(y, lora)}, {0: _rec(y, full)})
    d = (lora == y).astype(float) - (full == y)
    assert test.mean_difference == pytest.approx(-0.06)
    assert test.p_value == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert paired_row_test({0: _rec(y[::-1], lora)}, {0: _rec(y, full)}) is None  # other rows: no pairing


def test_identical_predictions_are_never_significant():
    y, p = _at(0.80)
    assert paired_row_test({0: _rec(y, p), 1: _rec(y, p)}, {0: _rec(y, p), 1: _rec(y, p)}).p_value == 1.0
    rows = [{"study": "s", "method": m, "train_size": 100, "seed": 0, "accuracy": 0.8, **_rec(y, p)}
            for m in ("Full", "LoRA")]
    agg = aggregate(pd.DataFrame(rows), ["accuracy"]).set_index("method")
    assert agg.loc["LoRA", "p_vs_baseline"] == 1.0 and agg.loc["LoRA", "significant_vs_baseline"] is False


def test_one_seed_gets_intervals_and_holm_decides_the_mark():
    y, full = _at(0.80)
    rows = [{"study": "s", "method": "Full", "train_size": 100, "seed": 0, "accuracy": 0.80, **_rec(y, full)}]
    for name, acc, seed in (("Worse", 0.70, 1), ("Close", 0.79, 2), ("Close2", 0.785, 3)):
        _, p = _at(acc, seed=seed)
        rows.append({"study": "s", "method": name, "train_size": 100, "seed": 0, "accuracy": acc,
                     **_rec(y, p)})
    agg = aggregate(pd.DataFrame(rows), ["accuracy", "f1"]).set_index("method")
    assert agg.loc["Full", "accuracy_interval"] == "rows" and agg.loc["Full", "accuracy_n"] == 1
    assert agg.loc["Full", "accuracy_ci_low"] < 0.80 < agg.loc["Full", "accuracy_ci_high"]
    assert agg.loc["Full", "f1_ci_low"] < agg.loc["Full", "f1_mean"] < agg.loc["Full", "f1_ci_high"]
    assert agg.loc["Worse", "significant_vs_baseline"] and not agg.loc["Close", "significant_vs_baseline"]
    raw = agg["p_vs_baseline"].dropna()
    assert agg.loc[raw.idxmin(), "p_holm_vs_baseline"] == pytest.approx(3 * raw.min())  # 3 comparisons


def test_records_without_predictions_have_no_interval_with_one_seed():
    rows = [{"study": "s", "method": m, "train_size": 10, "seed": 0, "accuracy": a} for m, a in
            (("Full", 0.8), ("LoRA", 0.7))]
    agg = aggregate(pd.DataFrame(rows), ["accuracy"]).set_index("method")
    assert agg.loc["LoRA", "accuracy_mean"] == 0.7 and math.isnan(agg.loc["LoRA", "accuracy_ci_low"])
    assert agg.loc["LoRA", "accuracy_interval"] is None and agg.loc["LoRA", "p_vs_baseline"] is None
    from peftbench.report.tables import summary_frame

    old = pd.DataFrame([{**r, "peak_rss_mb": 900.0, "baseline_rss_mb": 350.0} for r in rows])
    assert summary_frame(old)["peak_rss_net_mb_mean"].tolist() == [550.0, 550.0]  # net, derived


def test_results_table_marks_and_explains(tmp_path):
    from rich.console import Console

    from peftbench.report.tables import results_table

    y, full = _at(0.80)
    _, bad = _at(0.50, seed=3)
    rows = [{"study": "s", "method": "Full", "train_size": 100, "seed": 0, "accuracy": 0.8,
             "peak_rss_net_mb": 700.0, "train_seconds": 50.0, "timing_contended": True,
             "timing_note": "load 3.5 on 2 cores", "latency_p50_ms": 18.0, "latency_p25_ms": 17.5,
             "latency_p75_ms": 19.0, **_rec(y, full)},
            {"study": "s", "method": "BitFit", "train_size": 100, "seed": 0, "accuracy": 0.5,
             "collapsed": True, "collapse_reason": "98% of validation predictions are one class",
             "peak_rss_net_mb": 400.0, "train_seconds": 20.0, "timing_contended": False, **_rec(y, bad)}]
    console = Console(width=300, record=True)
    console.print(results_table(pd.DataFrame(rows), "peftbench: s"))
    text = " ".join(console.export_text().split())  # the title wraps to the table's width
    assert "BitFit * ⚠collapsed" in text and "98% of validation predictions are one class" in text
    assert "0.800 ± 0.02" in text and "Holm-adjusted p < 0.05" in text
    assert "train MB (net)" in text and "18.0 [17.5-19.0]" in text
    assert "50.0 ⚠" in text and "load 3.5 on 2 cores" in text


# --- tuned studies: the chosen candidate is picked on validation, never on test -----------------------------
def test_reportable_picks_by_validation_not_test():
    base = {"study": "tradeoff", "setup": "a", "seed": 0, "train_size": 100, "status": "ok"}
    rows = [
        {**base, "method": "Full", "accuracy": 0.80, "val_accuracy": 0.78, "started_at": 1.0},
        # the poisoned candidate: best test accuracy, worse validation: must not be chosen
        {**base, "method": "LoRA-r8:lr=1e-02", "tune_group": "LoRA-r8", "learning_rate": 1e-2,
         "accuracy": 0.95, "val_accuracy": 0.70, "started_at": 2.0},
        {**base, "method": "LoRA-r8:lr=5e-04", "tune_group": "LoRA-r8", "learning_rate": 5e-4,
         "accuracy": 0.79, "val_accuracy": 0.77, "started_at": 3.0},
        {**base, "method": "LoRA-r8:lr=1e-03", "tune_group": "LoRA-r8", "learning_rate": 1e-3,
         "accuracy": 0.78, "val_accuracy": 0.77, "started_at": 4.0},  # a tie on validation: started later
        {**base, "method": "LoRA-r8:lr=1e-05", "tune_group": "LoRA-r8", "learning_rate": 1e-5,
         "status": "pruned", "val_accuracy": 0.99, "started_at": 5.0},  # pruned: never chosen
    ]
    out = reportable(pd.DataFrame(rows)).set_index("method")
    assert sorted(out.index) == ["Full", "LoRA-r8 (tuned)"]
    assert out.loc["LoRA-r8 (tuned)", "tuned_method"] == "LoRA-r8:lr=5e-04"
    assert out.loc["LoRA-r8 (tuned)", "learning_rate"] == 5e-4 and out.loc["LoRA-r8 (tuned)", "accuracy"] == 0.79
    assert math.isnan(out.loc["Full", "tuned_method"])  # untouched
    agg = aggregate(reportable(pd.DataFrame(rows)), ["accuracy"]).set_index("method")
    assert agg.loc["LoRA-r8 (tuned)", "learning_rates"] == [5e-4]
    from peftbench.report.tables import method_cell

    assert method_cell(agg.reset_index().iloc[1]) == "LoRA-r8 (tuned, lr 5e-04)"


def test_reportable_chooses_per_seed_and_leaves_plain_records_alone():
    rows = [{"study": "s", "seed": s, "train_size": 10, "status": "ok", "method": f"m{lr}", "tune_group": "m",
             "learning_rate": lr, "val_accuracy": v} for s, lr, v in
            ((0, 1e-3, 0.9), (0, 1e-4, 0.8), (1, 1e-3, 0.6), (1, 1e-4, 0.7))]
    rows.append({"study": "s", "seed": 0, "train_size": 10, "status": "ok", "method": "Full",
                 "val_accuracy": 0.1})
    out = reportable(pd.DataFrame(rows))
    chosen = out[out["method"] == "m (tuned)"].set_index("seed")["learning_rate"].to_dict()
    assert chosen == {0: 1e-3, 1: 1e-4}
    assert (out["method"] == "Full").sum() == 1
    # an untuned run of the same method in the same study stays its own row, never a third "seed"
    untuned = {"study": "s", "seed": 0, "train_size": 10, "status": "ok", "method": "m", "val_accuracy": 0.5}
    agg = aggregate(reportable(pd.DataFrame([*rows, untuned])), ["val_accuracy"])
    m_rows = agg[agg["method"].isin(["m", "m (tuned)"])].sort_values("seeds")
    assert m_rows["method"].tolist() == ["m", "m (tuned)"]  # a tuned choice is named so
    assert m_rows["seeds"].tolist() == [1, 2] and m_rows["learning_rates"].tolist()[1] == [1e-4, 1e-3]


def test_a_repeated_seed_in_an_older_store_counts_once():
    from peftbench.stats.summary import drop_repeated_seeds

    rows = [{"trial_id": "a", "study": "s", "setup": "x", "method": "Full", "train_size": 10, "seed": 0,
             "accuracy": 0.8, "started_at": 1.0},
            {"trial_id": "b", "study": "s", "setup": "x", "method": "Full", "train_size": 10, "seed": 0,
             "accuracy": 0.6, "started_at": 2.0},  # same seed again (another --test-size): not a second seed
            {"trial_id": "c", "study": "s", "setup": "y", "method": "Full", "train_size": 10, "seed": 0,
             "accuracy": 0.7, "started_at": 3.0}]  # another setup: its own row
    kept, dropped = drop_repeated_seeds(pd.DataFrame(rows))
    assert kept["trial_id"].tolist() == ["a", "c"] and dropped["trial_id"].tolist() == ["b"]
    agg = aggregate(pd.DataFrame(rows), ["accuracy"]).set_index("setup")
    assert agg.loc["x", "accuracy_mean"] == 0.8 and agg.loc["x", "seeds"] == 1


def test_a_tuned_method_is_compared_with_the_tuned_full():
    y, full = _at(0.80)
    _, worse = _at(0.60, seed=4)
    base = {"study": "s", "train_size": 100, "seed": 0, "status": "ok"}
    rows = [{**base, "method": "Full", "accuracy": 0.6, "val_accuracy": 0.6, **_rec(y, worse)},  # untuned
            {**base, "method": "Full:lr=1e-05", "tune_group": "Full", "learning_rate": 1e-5, "accuracy": 0.8,
             "val_accuracy": 0.8, **_rec(y, full)},
            {**base, "method": "LoRA:lr=1e-03", "tune_group": "LoRA", "learning_rate": 1e-3, "accuracy": 0.8,
             "val_accuracy": 0.8, **_rec(y, full)}]
    agg = aggregate(reportable(pd.DataFrame(rows)), ["accuracy"]).set_index("method")
    assert agg.loc["LoRA (tuned)", "p_vs_baseline"] == 1.0  # same predictions as the tuned Full, not the untuned one
