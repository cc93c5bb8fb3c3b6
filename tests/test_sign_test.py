"""The sign test of paired differences (bnlab.analysis.sign_test), checked against binomial sums by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnlab.analysis.sign_test import paired_sign_test


def binomial_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed by hand."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


@pytest.mark.parametrize("positive, negative", [(8, 0), (15, 5), (10, 10), (3, 9)])
def test_the_p_value_is_the_two_sided_binomial_tail_of_the_fewer_side(positive, negative):
    differences = np.r_[np.linspace(0.01, 0.9, positive), -np.linspace(0.01, 0.5, negative)]
    n = positive + negative
    expected = min(1.0, 2 * binomial_tail(min(positive, negative), n))
    assert paired_sign_test(differences)["p_difference"] == pytest.approx(expected, rel=1e-12)


def test_the_interval_is_the_medians_from_order_statistics():
    differences = np.random.default_rng(0).normal(0.3, 0.4, 20)
    # by hand: the largest k with P(X < k) <= 2.5% for X ~ Binomial(20, 1/2) is k = 6 (P(X <= 5) = 0.0207)
    k = max(k for k in range(1, 11) if binomial_tail(k - 1, 20) <= 0.025)
    ordered = np.sort(differences)
    result = paired_sign_test(differences)
    assert k == 6 and (result["ci_low"], result["ci_high"]) == (ordered[k - 1], ordered[20 - k])
    assert result["median"] == np.median(differences) and result["mean"] == pytest.approx(differences.mean())


def test_a_split_outcome_is_called_by_the_count_of_seeds_whatever_the_sizes():
    # BN wins every seed: by 2-3 points where the plain network trains, by 70-88 where it diverges
    differences = np.r_[[0.02, 0.03, 0.025, 0.018, 0.021, 0.03], [0.70, 0.88, 0.69, 0.75, 0.8, 0.77, 0.85, 0.72]]
    result = paired_sign_test(differences)
    assert result["p_difference"] == pytest.approx(2 / 2 ** 14)  # all 14 on one side
    assert result["ci_low"] > 0


def test_too_few_seeds_give_a_p_but_no_interval():
    result = paired_sign_test([0.03, 0.02, 0.7, 0.88, 0.69])
    assert result["p_difference"] == pytest.approx(2 / 2 ** 5)  # 0.0625: five seeds cannot reach 0.05
    assert math.isnan(result["ci_low"]) and math.isnan(result["ci_high"])  # the range of 5 covers only 94%
    one = paired_sign_test([0.4])
    assert one["n"] == 1 and one["median"] == 0.4 and math.isnan(one["p_difference"])


def test_equivalence_is_two_one_sided_sign_tests_against_the_margin():
    inside = [0.001, -0.002, 0.0005, 0.001, -0.001, 0.002, 0.0015, -0.0005]
    # every difference is above -0.005 and below +0.005: each one-sided test has all 8 seeds on its side
    assert paired_sign_test(inside, margin=0.005)["p_equivalence"] == pytest.approx(1 / 2 ** 8)
    assert math.isnan(paired_sign_test(inside)["p_equivalence"])
    assert paired_sign_test(inside, margin=0.0012)["p_equivalence"] > 0.05  # 3 of 8 beyond the margin


@pytest.mark.parametrize("bad, message", [
    ({"differences": [[0.1, 0.2]]}, "Expected differences as a 1-D sequence of finite numbers"),
    ({"differences": [0.1, float("nan")]}, "Expected differences as a 1-D sequence of finite numbers"),
    ({"differences": [0.1, 0.2], "margin": 0}, "Expected a positive, finite equivalence margin or None"),
    ({"differences": [0.1, 0.2], "confidence": 95}, "Expected confidence in (0, 1), e.g. 0.05 or 0.95. Received: 95"),
])
def test_bad_input_says_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        paired_sign_test(**bad)


def test_zero_differences_count_against_the_claim():
    # 10 seeds ahead and 3 tied (both variants diverged to the same chance accuracy): the ties count as
    # the other side, p = 2 P(X <= 3) for 13 seeds, not 2 P(X <= 0) for 10 as if the ties were dropped
    result = paired_sign_test([0.0] * 3 + [0.1] * 10)
    assert result["p_difference"] == pytest.approx(2 * binomial_tail(3, 13), rel=1e-12)
    assert result["p_difference"] > 0.05
