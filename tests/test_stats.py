import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bnlab.analysis import stats


def t_interval(values):
    """The expected 95% t interval, written out from the textbook formula."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    half = scipy_stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return values.mean() - half, values.mean() + half


def make_trials(rows):
    """A trials table from (variant, seed, status, test_accuracy) tuples."""
    return pd.DataFrame(rows, columns=["variant", "seed", "status", "test_accuracy"])


# mean_interval


def test_mean_interval_three_values_matches_the_t_formula():
    result = stats.mean_interval([1.0, 2.0, 3.0])
    assert result["n"] == 3
    assert result["mean"] == 2.0
    assert result["std"] == 1.0
    # t(0.975, 2) = 4.302652729911275, so the half width is 4.3027 / sqrt(3).
    assert result["ci_low"] == pytest.approx(2.0 - 4.302652729911275 / math.sqrt(3))
    assert result["ci_high"] == pytest.approx(2.0 + 4.302652729911275 / math.sqrt(3))


def test_mean_interval_matches_t_interval_for_uneven_values():
    values = [0.981, 0.9825, 0.979, 0.9841]
    result = stats.mean_interval(values)
    low, high = t_interval(values)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["std"] == pytest.approx(np.std(values, ddof=1))


def test_mean_interval_single_value_has_no_spread():
    result = stats.mean_interval([0.98])
    assert result["n"] == 1
    assert result["mean"] == 0.98
    assert math.isnan(result["std"])
    assert math.isnan(result["ci_low"]) and math.isnan(result["ci_high"])


def test_mean_interval_empty_gives_zero_and_nan():
    result = stats.mean_interval([])
    assert result["n"] == 0
    assert all(math.isnan(result[key]) for key in ("mean", "std", "ci_low", "ci_high"))


def test_mean_interval_returns_plain_python_numbers():
    result = stats.mean_interval(np.array([1, 2], dtype=np.int64))
    assert type(result["n"]) is int
    assert all(type(result[key]) is float for key in ("mean", "std", "ci_low", "ci_high"))


def test_mean_interval_other_confidence_level():
    result = stats.mean_interval([1.0, 2.0, 3.0], confidence=0.9)
    half = scipy_stats.t.ppf(0.95, 2) / math.sqrt(3)
    assert result["ci_high"] == pytest.approx(2.0 + half)


def test_mean_interval_rejects_nan_with_the_values():
    with pytest.raises(ValueError, match=r"finite values.*Received: \[1.0, nan\]"):
        stats.mean_interval([1.0, float("nan")])


def test_mean_interval_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence level in \\(0, 1\\).*Received: 95"):
        stats.mean_interval([1.0, 2.0], confidence=95)


# variant_statistics


def test_variant_statistics_excludes_and_counts_diverged_trials():
    trials = make_trials([
        ("a", 0, "complete", 0.97),
        ("a", 1, "complete", 0.98),
        ("a", 2, "diverged", 0.10),
        ("a", 3, "complete", 0.99),
        ("b", 0, "complete", 0.95),
    ])
    table = stats.variant_statistics(trials, "test_accuracy")
    a = table[table["variant"] == "a"].iloc[0]
    assert a["n"] == 3
    assert a["excluded"] == 1
    assert a["missing"] == 0
    assert a["mean"] == pytest.approx(0.98)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(t_interval([0.97, 0.98, 0.99]))
    b = table[table["variant"] == "b"].iloc[0]
    assert b["n"] == 1 and b["excluded"] == 0
    assert math.isnan(b["std"]) and math.isnan(b["ci_low"])


def test_variant_statistics_rows_follow_the_given_order_and_figures():
    trials = make_trials([("a", 0, "complete", 0.9), ("b", 0, "complete", 0.8)])
    trials["best_val_accuracy"] = [0.91, 0.81]
    table = stats.variant_statistics(trials, ["test_accuracy", "best_val_accuracy"], ["b", "a"])
    assert list(zip(table["variant"], table["figure"])) == [
        ("b", "test_accuracy"), ("b", "best_val_accuracy"),
        ("a", "test_accuracy"), ("a", "best_val_accuracy"),
    ]
    assert list(table.columns) == ["variant", "figure", "n", "mean", "std", "ci_low",
                                   "ci_high", "excluded", "missing"]


def test_variant_statistics_counts_missing_values_and_absent_variants():
    trials = make_trials([("a", 0, "complete", 0.9), ("a", 1, "complete", float("nan"))])
    table = stats.variant_statistics(trials, "test_accuracy", ["a", "not_run_yet"])
    assert table["n"].tolist() == [1, 0]
    assert table["missing"].tolist() == [1, 0]
    assert math.isnan(table["mean"].iloc[1])


def test_variant_statistics_missing_column_names_it():
    trials = make_trials([("a", 0, "complete", 0.9)])
    with pytest.raises(ValueError, match=r"missing required columns: \[.test_loss.\]"):
        stats.variant_statistics(trials, ["test_loss"])


# paired_differences


def test_paired_differences_pairs_only_shared_complete_seeds():
    trials = make_trials([
        ("no_bn", 0, "complete", 0.90),
        ("no_bn", 1, "complete", 0.92),
        ("no_bn", 2, "complete", 0.91),  # no partner in bn
        ("bn", 0, "complete", 0.93),
        ("bn", 1, "complete", 0.96),
        ("bn", 3, "complete", 0.99),  # no partner in no_bn
        ("bn", 2, "diverged", 0.10),  # partner exists, but the trial diverged
    ])
    table = stats.paired_differences(trials, "test_accuracy")
    row = table.iloc[0]
    assert row["variant"] == "bn" and row["baseline"] == "no_bn"
    assert row["n_pairs"] == 2
    assert row["mean_difference"] == pytest.approx(0.035)  # (0.03 + 0.04) / 2
    low, high = t_interval([0.03, 0.04])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))


def test_paired_differences_one_row_per_variant_in_order_without_baseline():
    trials = make_trials([
        ("x", 0, "complete", 0.5), ("base", 0, "complete", 0.4), ("y", 0, "complete", 0.2),
    ])
    table = stats.paired_differences(trials, "test_accuracy", baseline="base",
                                     variants=["base", "y", "x"])
    assert table["variant"].tolist() == ["y", "x"]
    assert table["mean_difference"].tolist() == pytest.approx([-0.2, 0.1])
    assert table["n_pairs"].tolist() == [1, 1]
    assert table["ci_low"].isna().all()


def test_paired_differences_missing_baseline_names_it_and_the_variants():
    trials = make_trials([("bn", 0, "complete", 0.9), ("bn_input", 0, "complete", 0.8)])
    with pytest.raises(ValueError, match=r"'no_bn'.*\['bn', 'bn_input'\]"):
        stats.paired_differences(trials, "test_accuracy")


def test_paired_differences_rejects_duplicated_trials():
    trials = make_trials([("no_bn", 0, "complete", 0.9), ("no_bn", 0, "complete", 0.8)])
    with pytest.raises(ValueError, match="one row per \\(variant, seed\\)"):
        stats.paired_differences(trials, "test_accuracy")
