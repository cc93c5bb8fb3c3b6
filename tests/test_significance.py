import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bnlab.analysis import significance


def flags(pattern):
    """Boolean array from a string of 1s and 0s."""
    return np.array([character == "1" for character in pattern])


# mcnemar_exact


def test_mcnemar_exact_counts_discordant_examples_and_tests_them_exactly():
    # Eight examples only the variant gets right, one only the baseline, three both, two neither.
    variant = flags("11111111" + "0" + "111" + "00")
    baseline = flags("00000000" + "1" + "111" + "00")
    result = significance.mcnemar_exact(variant, baseline)
    assert result["variant_only"] == 8 and result["baseline_only"] == 1
    # Two-sided exact binomial: 2 * P(X <= 1 | n = 9, p = 1/2) = 2 * (1 + 9) / 512.
    assert result["p_value"] == pytest.approx(20 / 512)


def test_mcnemar_exact_without_discordant_examples_is_one():
    assert significance.mcnemar_exact(flags("1100"), flags("1100")) == {
        "variant_only": 0, "baseline_only": 0, "p_value": 1.0
    }


@pytest.mark.parametrize(
    "variant, baseline, message",
    [
        (flags("11111"), flags("1111"), r"equal length.*Received shapes \(5,\) and \(4,\)"),
        (np.array([1, 0]), flags("10"), r"boolean arrays.*dtypes int64 and bool"),
        (flags("1010").reshape(2, 2), flags("1010").reshape(2, 2), r"1-D boolean.*\(2, 2\)"),
    ],
)
def test_mcnemar_exact_rejects_bad_inputs(variant, baseline, message):
    with pytest.raises(ValueError, match=message):
        significance.mcnemar_exact(variant, baseline)


# mcnemar_table


def test_mcnemar_table_rows_per_shared_seed_and_pooled():
    variant = {1: flags("11110"), 0: flags("1111"), 7: flags("1")}  # seed 7 has no baseline
    baseline = {0: flags("0000"), 1: flags("00001"), 3: flags("0")}
    table = significance.mcnemar_table(variant, baseline)
    assert list(table.columns) == ["seed", "variant_only", "baseline_only", "p_value"]
    assert table["seed"].tolist() == [0, 1, "pooled"]
    assert table["variant_only"].tolist() == [4, 4, 8]
    assert table["baseline_only"].tolist() == [0, 1, 1]
    assert table["p_value"].tolist() == pytest.approx([2 / 16, 2 * 6 / 32, 20 / 512])


def test_mcnemar_table_without_shared_seed_names_both_sides():
    with pytest.raises(ValueError, match=r"variant seeds \[0\] and baseline seeds \[1\]"):
        significance.mcnemar_table({0: flags("1")}, {1: flags("1")})


# paired_bootstrap_interval


def example_differences(seeds, examples, seed=1):
    """Random -1/0/1 differences, mostly ties, slightly favouring the variant."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.75, 0.15], size=(seeds, examples))


def test_bootstrap_over_examples_of_one_seed_agrees_with_scipy():
    differences = example_differences(1, 500)
    low, high = significance.paired_bootstrap_interval(differences, resamples=9999, over="examples")
    reference = scipy_stats.bootstrap((differences[0],), np.mean, method="percentile", n_resamples=9999,
                                      random_state=0).confidence_interval
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=0.005)
    assert low < differences.mean() < high


def test_bootstrap_over_seeds_agrees_with_scipy_on_per_seed_means():
    differences = example_differences(10, 300)
    low, high = significance.paired_bootstrap_interval(differences, resamples=9999, over="seeds")
    reference = scipy_stats.bootstrap((differences.mean(axis=1),), np.mean, method="percentile",
                                      n_resamples=9999, random_state=0).confidence_interval
    width = reference.high - reference.low
    assert (low, high) == pytest.approx((reference.low, reference.high), abs=0.05 * width)


def test_bootstrap_identical_seeds_make_both_equal_examples():
    differences = np.tile(example_differences(1, 400), (6, 1))
    both = significance.paired_bootstrap_interval(differences, over="both")
    assert both == pytest.approx(significance.paired_bootstrap_interval(differences, over="examples"))
    assert both == pytest.approx(significance.paired_bootstrap_interval(differences[:1], over="examples"))


def test_bootstrap_over_both_is_at_least_as_wide_as_over_examples_when_seeds_differ():
    differences = example_differences(8, 400)
    differences[:4] += 0.2  # a seed-to-seed spread that only resampling seeds sees
    both = significance.paired_bootstrap_interval(differences, over="both")
    examples = significance.paired_bootstrap_interval(differences, over="examples")
    assert both[1] - both[0] > examples[1] - examples[0]


@pytest.mark.parametrize("value", [1.0, 0.0, -1.0])
def test_bootstrap_constant_difference_is_a_point(value):
    for over in ("both", "examples", "seeds"):
        assert significance.paired_bootstrap_interval(np.full((3, 50), value), over=over) == (value, value)


def test_bootstrap_constant_fraction_is_a_point_up_to_rounding():
    assert significance.paired_bootstrap_interval(np.full((4, 50), 0.3)) == pytest.approx((0.3, 0.3))


def test_bootstrap_is_reproducible_and_independent_of_chunking(monkeypatch):
    differences = example_differences(3, 200)
    whole = significance.paired_bootstrap_interval(differences, resamples=500, seed=5)
    monkeypatch.setattr(significance, "_CHUNK_CELLS", 7 * 200)  # 7 resamples per chunk
    assert significance.paired_bootstrap_interval(differences, resamples=500, seed=5) == whole
    assert significance.paired_bootstrap_interval(differences, resamples=500, seed=6) != whole


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"differences": [1.0, 0.0]}, r"2-D array \(seeds x examples\).*shape \(2,\)"),
        ({"differences": [[1.0, math.nan]]}, r"with 1 NaN or inf"),
        ({"differences": np.zeros((0, 3))}, r"non-empty"),
        ({"differences": [[1.0]], "over": "images"}, r"Unknown over='images'. Available: both, examples, seeds."),
        ({"differences": [[1.0]], "resamples": 0}, r"positive whole number of resamples.*Received: 0"),
        ({"differences": [[1.0]], "confidence": 95}, r"confidence in \(0, 1\).*Received: 95"),
    ],
)
def test_bootstrap_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        significance.paired_bootstrap_interval(**arguments)


# paired_test


def test_paired_test_matches_the_t_formulas():
    result = significance.paired_test([1.0, 2.0, 3.0], margin=2.5)
    assert (result["n"], result["mean"], result["std"]) == (3, 2.0, 1.0)
    standard_error = 1 / math.sqrt(3)
    half = scipy_stats.t.ppf(0.975, 2) * standard_error
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((2 - half, 2 + half))
    assert result["p_difference"] == pytest.approx(2 * scipy_stats.t.sf(2 / standard_error, 2))
    above_lower = scipy_stats.t.sf((2 + 2.5) / standard_error, 2)
    below_upper = scipy_stats.t.cdf((2 - 2.5) / standard_error, 2)
    assert result["p_equivalence"] == pytest.approx(max(above_lower, below_upper))


def test_paired_test_narrow_spread_inside_the_margin_is_equivalent():
    result = significance.paired_test([0.0005, -0.0003, 0.0001, 0.0002, -0.0001], margin=0.002)
    assert result["p_equivalence"] < 0.05
    assert result["p_difference"] > 0.05


def test_paired_test_without_margin_has_no_equivalence_p():
    assert math.isnan(significance.paired_test([1.0, 2.0])["p_equivalence"])


@pytest.mark.parametrize("values, mean", [([0.25], 0.25), ([], math.nan)])
def test_paired_test_fewer_than_two_seeds_is_all_nan(values, mean):
    result = significance.paired_test(values, margin=0.1)
    assert result["n"] == len(values)
    assert result["mean"] == mean or (math.isnan(mean) and math.isnan(result["mean"]))
    for key in ("std", "ci_low", "ci_high", "p_difference", "p_equivalence"):
        assert math.isnan(result[key])


@pytest.mark.parametrize(
    "value, margin, p_difference, p_equivalence",
    [(0.002, 0.003, 0.0, 0.0), (0.002, 0.001, 0.0, 1.0), (0.002, 0.002, 0.0, 1.0), (0.0, 0.001, 1.0, 0.0)],
)
def test_paired_test_zero_spread_takes_the_limit(value, margin, p_difference, p_equivalence):
    result = significance.paired_test([value] * 4, margin=margin)
    assert result["std"] == 0.0
    assert (result["ci_low"], result["ci_high"]) == (value, value)
    assert (result["p_difference"], result["p_equivalence"]) == (p_difference, p_equivalence)


@pytest.mark.parametrize(
    "values, margin, message",
    [
        ([1.0, math.nan], None, r"1-D sequence of finite numbers.*\[1.0, nan\]"),
        ([[1.0, 2.0]], None, r"1-D sequence"),
        ([1.0, 2.0], 0.0, r"positive, finite equivalence margin or None. Received: 0.0"),
        ([1.0, 2.0], -0.1, r"Received: -0.1"),
    ],
)
def test_paired_test_rejects_bad_inputs(values, margin, message):
    with pytest.raises(ValueError, match=message):
        significance.paired_test(values, margin=margin)


# holm


def test_holm_hand_example():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; made monotone.
    adjusted = significance.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_passes_nan_through_and_leaves_it_out_of_the_family():
    adjusted = significance.holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])


def test_holm_caps_at_one_and_keeps_a_single_p():
    assert significance.holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    assert significance.holm([0.3]).tolist() == [0.3]
    assert significance.holm([]).size == 0


@pytest.mark.parametrize("values", [[0.5, 1.2], [-0.1], [[0.1, 0.2]]])
def test_holm_rejects_values_that_are_not_p_values(values):
    with pytest.raises(ValueError, match=r"1-D sequence of p-values in \[0, 1\] or NaN"):
        significance.holm(values)


# verdict


@pytest.mark.parametrize(
    "p_difference, p_equivalence, mean, higher_is_better, expected",
    [
        (0.01, 0.01, 0.001, True, "equivalent"),  # significant but inside the margin
        (0.50, 0.01, 0.001, True, "equivalent"),
        (0.01, 0.30, 0.004, True, "better"),
        (0.01, 0.30, -0.004, True, "worse"),
        (0.01, 0.30, -0.004, False, "better"),  # e.g. a lower loss
        (0.01, 0.30, 0.004, False, "worse"),
        (0.01, math.nan, 0.004, True, "better"),
        (0.20, 0.30, 0.004, True, "inconclusive"),
        (0.20, math.nan, 0.0, True, "inconclusive"),  # no margin: never "equivalent"
        (math.nan, math.nan, math.nan, True, "inconclusive"),
        (0.05, 0.05, 0.004, True, "inconclusive"),  # at alpha is not below it
    ],
)
def test_verdict_branches(p_difference, p_equivalence, mean, higher_is_better, expected):
    assert significance.verdict(p_difference, p_equivalence, mean, higher_is_better=higher_is_better) == expected
    assert expected in significance.VERDICTS


def test_verdict_other_alpha():
    assert significance.verdict(0.03, math.nan, 1.0, alpha=0.01) == "inconclusive"
    assert significance.verdict(0.03, math.nan, 1.0, alpha=0.1) == "better"


@pytest.mark.parametrize("mean", [0.0, math.nan])
def test_verdict_significant_without_direction_is_an_error(mean):
    with pytest.raises(ValueError, match="non-zero mean_difference"):
        significance.verdict(0.01, math.nan, mean)


def test_verdict_rejects_bad_alpha():
    with pytest.raises(ValueError, match=r"alpha in \(0, 1\).*Received: 5"):
        significance.verdict(0.01, 0.01, 1.0, alpha=5)


# seeds_for_power


@pytest.mark.parametrize("standardized_effect, seeds", [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_for_power_matches_paired_t_tables(standardized_effect, seeds):
    # Cohen's tables for a two-sided one-sample / paired t-test, alpha 0.05, power 0.8.
    assert significance.seeds_for_power(0.002, standardized_effect * 0.002) == seeds


def test_seeds_for_power_agrees_with_simulated_t_tests():
    rng = np.random.default_rng(0)

    def simulated_power(seeds):
        samples = rng.normal(1.0, 1.0, size=(40_000, seeds))
        return float((scipy_stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05).mean())

    assert significance.seeds_for_power(1.0, 1.0) == 10
    assert simulated_power(10) > 0.79  # exact 0.803
    assert simulated_power(9) < 0.77  # exact 0.748


@pytest.mark.parametrize("standardized_effect, seeds", [(6.67, 3), (10.0, 3), (3.0, 4), (2.0, 5)])
def test_seeds_for_power_large_effects(standardized_effect, seeds):
    # Exact power at n - 1 = 2 degrees of freedom for effect 6.67: 0.9986 (2 seeds: 0.54). scipy's
    # nct.cdf gives NaN in the lower tail there; that once made 0.00075 need 7 seeds and 0.0022 only 4.
    assert significance.seeds_for_power(0.001, standardized_effect * 0.001) == seeds


def test_seeds_for_power_never_rises_as_the_spread_shrinks():
    needed = [significance.seeds_for_power(std, 0.005) for std in np.geomspace(0.01, 0.0001, 60)]
    assert needed == sorted(needed, reverse=True)


def test_seeds_for_power_other_power_and_alpha():
    assert significance.seeds_for_power(1.0, 1.0, power=0.9) > 10
    assert significance.seeds_for_power(1.0, 1.0, alpha=0.01) > 10


def test_seeds_for_power_not_reached_is_none():
    assert significance.seeds_for_power(1.0, 0.1, max_seeds=50) is None


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"std_difference": 0.0, "effect": 1.0}, r"positive, finite std_difference. Received: 0.0"),
        ({"std_difference": 1.0, "effect": -0.5}, r"positive, finite effect. Received: -0.5"),
        ({"std_difference": 1.0, "effect": 1.0, "power": 1.0}, r"power in \(0, 1\)"),
        ({"std_difference": 1.0, "effect": 1.0, "max_seeds": 1}, r"max_seeds as a whole number >= 2"),
    ],
)
def test_seeds_for_power_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        significance.seeds_for_power(**arguments)


def test_mcnemar_table_is_a_dataframe_with_pooled_last():
    table = significance.mcnemar_table({0: flags("10")}, {0: flags("01")})
    assert isinstance(table, pd.DataFrame)
    assert table.iloc[-1]["seed"] == "pooled" and table.iloc[-1]["p_value"] == 1.0
