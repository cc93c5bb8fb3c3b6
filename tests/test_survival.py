"""Kaplan-Meier medians of the time to a target, and per-variant target statistics (bnlab.analysis.survival)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bnlab.analysis import survival

# kaplan_meier_median


@pytest.mark.parametrize(
    "durations, expected",
    [
        ([5, 1, 3], 3.0),  # odd count: the ordinary median
        ([4, 2, 3, 1], 2.0),  # even count: the lower of the two middle values
        ([2, 2, 2, 7], 2.0),
        ([6], 6.0),
    ],
)
def test_kaplan_meier_without_censoring_is_the_lower_median(durations, expected):
    assert survival.kaplan_meier_median(durations, [True] * len(durations)) == expected


def test_kaplan_meier_with_censoring_hand_computed():
    # Event at 2: 5 at risk, S = 4/5. Event at 3 (a trial censored at 3 is still at risk):
    # 4 at risk, S = 4/5 * 3/4 = 0.6. Event at 5: 2 at risk, S = 0.6 * 1/2 = 0.3 <= 0.5.
    durations = [2, 3, 3, 5, 6]
    reached = [True, False, True, True, False]
    assert survival.kaplan_meier_median(durations, reached) == 5.0


def test_kaplan_meier_censoring_moves_the_median_later_than_dropping_would():
    # Dropping the two censored trials would give the median of [1, 2] = 1.
    assert survival.kaplan_meier_median([1, 2, 4, 4], [True, True, False, False]) == 2.0


def test_kaplan_meier_all_censored_is_inf():
    assert survival.kaplan_meier_median([15, 15, 15], [False, False, False]) == math.inf


def test_kaplan_meier_never_down_to_half_is_inf():
    # S = 3/4 after the only event; the other three never reach the target.
    assert survival.kaplan_meier_median([1, 4, 4, 4], [True, False, False, False]) == math.inf


@pytest.mark.parametrize(
    "durations, reached, message",
    [
        ([], [], "at least one trial"),
        ([1, 2], [True], "Received 2 durations and 1 flags"),
        ([1, 2], [1, 0], "as booleans"),
        ([1, float("nan")], [True, False], "non-negative durations"),
    ],
)
def test_kaplan_meier_rejects_bad_inputs(durations, reached, message):
    with pytest.raises(ValueError, match=message):
        survival.kaplan_meier_median(durations, reached)


# Exact halves: the old float product compared with 0.5 stepped one event too far.
TEN_SEEDS = [4, 5, 5, 7, 8, 8, 9, 11, 12, 18]
TEN_REACHED = [True, True, True, True, False, True, False, True, True, True]


def test_kaplan_meier_exact_half_with_censoring_is_the_median():
    # Events 4 (S = 9/10), 5 twice (7/10), 7 (6/10); 8 has one event of 4 at risk: S = 6/10 * 3/4 = 1/2.
    assert survival.kaplan_meier_median(TEN_SEEDS, TEN_REACHED) == 8.0


@pytest.mark.parametrize("seeds, expected", [(24, 12.0), (28, 14.0), (30, 15.0)])
def test_kaplan_meier_even_count_without_censoring_is_the_lower_middle(seeds, expected):
    # Reaching at 1..n: S(n/2) = (n/2)/n = 1/2 exactly, so the median is the lower middle value.
    assert survival.kaplan_meier_median(list(range(1, seeds + 1)), [True] * seeds) == expected


def test_kaplan_meier_returns_median_and_interval():
    result = survival.kaplan_meier(TEN_SEEDS, TEN_REACHED)
    assert set(result) == {"median", "ci_low", "ci_high"}
    assert result["median"] == 8.0


def greenwood_log_log_band(durations, reached, confidence=0.95):
    """(time, lower, upper) of the log-log band at each event time, from the textbook formula.

    S = prod(1 - d/n); Greenwood: var(log S) = sum d / (n (n - d)); the band for log(-log S) has
    half width z * sqrt(greenwood) / |log S|, so the curves are S ** exp(+-z * sigma).
    """
    durations, reached = np.asarray(durations, dtype=float), np.asarray(reached, dtype=bool)
    z = scipy_stats.norm.ppf((1 + confidence) / 2)
    surviving, greenwood, band = 1.0, 0.0, []
    for time in np.unique(durations[reached]):
        at_risk = np.count_nonzero(durations >= time)
        events = np.count_nonzero((durations == time) & reached)
        surviving *= 1 - events / at_risk
        if surviving == 0:
            band.append((time, 0.0, math.nan))
            break
        greenwood += events / (at_risk * (at_risk - events))
        sigma = math.sqrt(greenwood) / abs(math.log(surviving))
        band.append((time, surviving ** math.exp(z * sigma), surviving ** math.exp(-z * sigma)))
    return band


def first_time_at_or_below_half(band, curve):
    return next((row[0] for row in band if row[curve] <= 0.5), math.inf)


@pytest.mark.parametrize(
    "durations, reached, expected",
    [
        (TEN_SEEDS * 2, TEN_REACHED * 2, (5.0, 12.0)),
        ([2, 3, 3, 5, 6, 7, 8, 9, 9, 10, 12, 14],
         [True, False, True, True, False, True, True, True, False, True, True, False], (3.0, 12.0)),
        (list(range(1, 25)), [True] * 24, (7.0, 17.0)),
    ],
)
def test_kaplan_meier_interval_inverts_the_greenwood_log_log_band(durations, reached, expected):
    band = greenwood_log_log_band(durations, reached)
    by_hand = (first_time_at_or_below_half(band, 1), first_time_at_or_below_half(band, 2))
    assert by_hand == expected
    result = survival.kaplan_meier(durations, reached)
    assert (result["ci_low"], result["ci_high"]) == expected
    assert result["ci_low"] <= result["median"] <= result["ci_high"]


def test_kaplan_meier_other_confidence_narrows_the_interval():
    durations, reached = TEN_SEEDS * 2, TEN_REACHED * 2
    band = greenwood_log_log_band(durations, reached, confidence=0.5)
    result = survival.kaplan_meier(durations, reached, confidence=0.5)
    assert (result["ci_low"], result["ci_high"]) == (
        first_time_at_or_below_half(band, 1), first_time_at_or_below_half(band, 2)
    ) == (8.0, 11.0)


def test_kaplan_meier_upper_limit_not_reached_is_inf():
    # S(18) = 0 ends the band (undefined there); the upper curve is 0.503 at 12, never <= 0.5.
    result = survival.kaplan_meier(TEN_SEEDS, TEN_REACHED)
    assert (result["ci_low"], result["ci_high"]) == (4.0, math.inf)


def test_kaplan_meier_single_trial_interval_starts_at_its_event():
    assert survival.kaplan_meier([5], [True]) == {"median": 5.0, "ci_low": 5.0, "ci_high": math.inf}


def test_kaplan_meier_without_events_has_no_lower_limit():
    result = survival.kaplan_meier([15, 15, 15], [False, False, False])
    assert result["median"] == math.inf and result["ci_high"] == math.inf
    assert math.isnan(result["ci_low"])


def test_kaplan_meier_never_trials_stay_at_risk_and_never_reach():
    durations, reached = [1, 1, 1, 4, 5], [False, False, False, True, True]
    # Censored at 1, the three would leave the risk set: S(4) = 1/2, S(5) = 0.
    assert survival.kaplan_meier(durations, reached)["median"] == 4.0
    never = [True, True, True, False, False]
    # Never reaching, they stay at risk: S(4) = 4/5, S(5) = 3/5, never down to one half.
    result = survival.kaplan_meier(durations, reached, never=never)
    assert result["median"] == math.inf and result["ci_high"] == math.inf


def test_kaplan_meier_never_after_the_last_event_changes_nothing():
    durations, reached = [2, 3, 9, 9], [True, True, False, False]
    assert survival.kaplan_meier(durations, reached, never=[False, False, True, True]) == survival.kaplan_meier(
        durations, reached
    )


@pytest.mark.parametrize(
    "never, message",
    [
        ([True], r"`never` as 2 booleans.*Received 1 values"),
        ([1, 0], r"`never` as 2 booleans.*dtype int64"),
        ([True, False], r"reached the target cannot be marked `never`.*\[0\]"),
    ],
)
def test_kaplan_meier_rejects_bad_never(never, message):
    with pytest.raises(ValueError, match=message):
        survival.kaplan_meier([1, 2], [True, False], never=never)


def test_kaplan_meier_rejects_bad_confidence():
    with pytest.raises(ValueError, match=r"confidence level in \(0, 1\).*Received: 1.5"):
        survival.kaplan_meier([1, 2], [True, True], confidence=1.5)


# target_statistics


def make_targets():
    """Variant a: 0.97 reached by all three seeds; 0.98 by seeds 0 and 2 only.
    Variant b: 0.98 by no seed. Every trial ran 10 epochs."""
    rows = [
        ("a", 0, 0.97, True, 2), ("a", 0, 0.98, True, 4),
        ("a", 1, 0.97, True, 3), ("a", 1, 0.98, False, None),
        ("a", 2, 0.97, True, 2), ("a", 2, 0.98, True, 6),
        ("b", 0, 0.97, True, 5), ("b", 0, 0.98, False, None),
        ("b", 1, 0.97, False, None), ("b", 1, 0.98, False, None),
    ]
    targets = pd.DataFrame(
        rows, columns=["variant", "seed", "target", "reached", "epochs_to_target"]
    )
    trials = pd.DataFrame({
        "variant": ["a", "a", "a", "b", "b"],
        "seed": [0, 1, 2, 0, 1],
        "status": ["complete"] * 5,
        "epochs_run": [10, 10, 10, 10, 10],
    })
    return targets, trials


def test_target_statistics_keeps_unreached_seeds():
    targets, trials = make_targets()
    table = survival.target_statistics(targets, trials).set_index(["variant", "target"])
    row = table.loc[("a", 0.98)]
    assert row["seeds"] == 3 and row["reached"] == 2
    assert row["mean_epochs_reached"] == 5.0  # (4 + 6) / 2, over the reaching seeds only
    # Event at 4: 3 at risk, S = 2/3. Event at 6: 2 at risk (6, censored 10), S = 1/3.
    assert row["km_median_epochs"] == 6.0
    assert not row["lower_bound"]


def test_target_statistics_all_reached_is_the_plain_lower_median():
    targets, trials = make_targets()
    row = survival.target_statistics(targets, trials).set_index(["variant", "target"]).loc[
        ("a", 0.97)
    ]
    assert row["reached"] == 3
    assert row["mean_epochs_reached"] == pytest.approx(7 / 3)
    assert row["km_median_epochs"] == 2.0


def test_target_statistics_half_reached_and_none_reached():
    targets, trials = make_targets()
    table = survival.target_statistics(targets, trials).set_index(["variant", "target"])
    half = table.loc[("b", 0.97)]  # one of two seeds reached at 5: S(5) = 1/2
    assert half["reached"] == 1 and half["km_median_epochs"] == 5.0
    assert not half["lower_bound"]
    none = table.loc[("b", 0.98)]
    assert none["seeds"] == 2 and none["reached"] == 0
    assert math.isnan(none["mean_epochs_reached"])
    assert none["km_median_epochs"] == math.inf
    assert none["lower_bound"]
    assert none["epochs_observed"] == 10


def test_target_statistics_censors_at_each_trials_epochs_run():
    targets, trials = make_targets()
    trials.loc[(trials["variant"] == "a") & (trials["seed"] == 1), "epochs_run"] = 3
    row = survival.target_statistics(targets, trials).set_index(["variant", "target"]).loc[
        ("a", 0.98)
    ]
    # Censored at 3 now, before the event at 4: 2 at risk there, S = 1/2 already.
    assert row["km_median_epochs"] == 4.0


def test_target_statistics_order_and_columns():
    targets, trials = make_targets()
    table = survival.target_statistics(targets, trials, variants=["b", "a"])
    assert list(zip(table["variant"], table["target"])) == [
        ("b", 0.97), ("b", 0.98), ("a", 0.97), ("a", 0.98)
    ]
    assert list(table.columns) == ["variant", "target", "seeds", "reached",
                                   "mean_epochs_reached", "km_median_epochs", "lower_bound",
                                   "epochs_observed", "km_ci_low", "km_ci_high", "never",
                                   "censored_mean"]


def test_target_statistics_target_row_without_trial_is_an_error():
    targets, trials = make_targets()
    with pytest.raises(ValueError, match=r"without a trial: \[\{'variant': 'b', 'seed': 1\}\]"):
        survival.target_statistics(targets, trials.iloc[:4])


def make_diverged_targets():
    """Five seeds of one variant at one target: three diverged at epoch 1 without reaching it."""
    targets = pd.DataFrame({
        "variant": ["a"] * 5, "seed": range(5), "target": [0.98] * 5,
        "reached": [False, False, False, True, True], "epochs_to_target": [None, None, None, 4, 5],
        "steps_to_target": [None, None, None, 4000, 5000],
    })
    trials = pd.DataFrame({
        "variant": ["a"] * 5, "seed": range(5), "status": ["diverged"] * 3 + ["complete"] * 2,
        "epochs_run": [1, 1, 1, 10, 10], "steps_run": [1000, 1000, 1000, 10000, 10000],
    })
    return targets, trials


def test_target_statistics_diverged_unreached_trials_never_reach():
    targets, trials = make_diverged_targets()
    row = survival.target_statistics(targets, trials).iloc[0]
    # Censoring the diverged three at epoch 1 would give S(4) = 1/2, a median of 4 epochs.
    assert row["km_median_epochs"] == math.inf and row["lower_bound"]
    assert row["never"] == 3 and row["reached"] == 2
    assert row["km_ci_high"] == math.inf


def test_target_statistics_diverged_after_reaching_counts_as_reached():
    targets, trials = make_diverged_targets()
    trials.loc[trials["seed"] == 4, "status"] = "diverged"
    row = survival.target_statistics(targets, trials).iloc[0]
    assert row["reached"] == 2 and row["never"] == 3
    assert row["mean_epochs_reached"] == 4.5


def test_target_statistics_censored_mean_counts_unreached_seeds_one_past_the_run():
    targets, trials = make_targets()
    table = survival.target_statistics(targets, trials).set_index(["variant", "target"])
    assert table.loc[("a", 0.98), "censored_mean"] == pytest.approx((4 + 11 + 6) / 3)
    assert table.loc[("b", 0.98), "censored_mean"] == 11.0
    assert table["never"].tolist() == [0, 0, 0, 0]


def test_target_statistics_interval_columns_come_from_kaplan_meier():
    targets, trials = make_targets()
    row = survival.target_statistics(targets, trials).set_index(["variant", "target"]).loc[("a", 0.98)]
    expected = survival.kaplan_meier([4, 10, 6], [True, False, True])
    assert (row["km_ci_low"], row["km_ci_high"]) == (expected["ci_low"], expected["ci_high"])


def test_target_statistics_in_steps_reads_steps_columns():
    targets, trials = make_diverged_targets()
    trials["status"] = "complete"  # censored at their steps_run now, not never
    row = survival.target_statistics(targets, trials, unit="steps").iloc[0]
    # Censored at 1000: 2 at risk at 4000, S = 1/2. Column names stay those of epochs.
    assert row["km_median_epochs"] == 4000.0
    assert row["mean_epochs_reached"] == 4500.0
    assert row["epochs_observed"] == 10000
    assert row["censored_mean"] == pytest.approx((3 * 10001 + 4000 + 5000) / 5)
    assert row["never"] == 0


def test_target_statistics_in_steps_needs_steps_run():
    targets, trials = make_diverged_targets()
    with pytest.raises(ValueError, match=r"trials table is missing required columns: \['steps_run'\]"):
        survival.target_statistics(targets, trials.drop(columns="steps_run"), unit="steps")


def test_target_statistics_needs_status():
    targets, trials = make_targets()
    with pytest.raises(ValueError, match=r"missing required columns: \['status'\]"):
        survival.target_statistics(targets, trials.drop(columns="status"))


def test_target_statistics_unknown_unit_lists_the_choices():
    targets, trials = make_targets()
    with pytest.raises(ValueError, match="Unknown unit 'step'. Available: epochs, steps."):
        survival.target_statistics(targets, trials, unit="step")
