"""Paired comparisons of two variants that end in one of four verdicts; pure functions, no Keras.

Two variants trained on the same seeds and scored on the same test images are compared pair by
pair, which removes what both share. The test set alone limits one trial: at 98% accuracy on 10,000
images its sampling error is about +-0.27 points (1.96 * sqrt(0.98 * 0.02 / 10000)), larger than many
differences between variants. `paired_test` and `holm` feed `verdict`; `seeds_for_power` gives seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

VERDICTS = ("better", "worse", "equivalent", "inconclusive")
_OVER = ("both", "examples", "seeds")
_CHUNK_CELLS = 1 << 22  # resampling counts held at once: 4M cells, 32 MB per array


def mcnemar_exact(variant_correct, baseline_correct) -> dict:
    """Exact McNemar test on the test examples one model gets right and the other wrong.

    Args:
        variant_correct: Per test example, whether the variant classified it right (booleans).
        baseline_correct: The same for the baseline, in the same example order.

    Returns:
        A dict `{"variant_only", "baseline_only", "p_value"}`: the discordant counts (variant
        right and baseline wrong, and the reverse) and the two-sided exact binomial p-value of
        `variant_only` among the discordant examples against 1/2; 1.0 without discordant ones.

    Raises:
        ValueError: If an input is not a 1-D boolean array, or their lengths differ.
    """
    variant, baseline = np.asarray(variant_correct), np.asarray(baseline_correct)
    if variant.ndim != 1 or variant.dtype != bool or baseline.dtype != bool or variant.shape != baseline.shape:
        raise ValueError(
            "Expected variant_correct and baseline_correct as 1-D boolean arrays of equal length (one per example). "
            f"Received shapes {variant.shape} and {baseline.shape}, dtypes {variant.dtype} and {baseline.dtype}."
        )
    variant_only = int(np.count_nonzero(variant & ~baseline))
    return _mcnemar_counts(variant_only, int(np.count_nonzero(~variant & baseline)))


def mcnemar_table(variant_correct: Mapping[int, np.ndarray], baseline_correct: Mapping[int, np.ndarray]):
    """`mcnemar_exact` per seed present in both mappings, then once over all of them pooled.

    Pooling sums the discordant counts over seeds and tests the sums, treating every seed's
    discordances as independent; they are not quite (all seeds see the same images, and a hard
    image tends to be missed by every seed), so the pooled p-value is optimistic.

    Args:
        variant_correct: Seed to per-example correctness flags of the variant.
        baseline_correct: Seed to per-example correctness flags of the baseline.

    Returns:
        One row per shared seed in ascending order, then a row with seed "pooled"; columns
        `seed`, `variant_only`, `baseline_only`, `p_value`.

    Raises:
        ValueError: If no seed is in both mappings, or a seed's flags fail `mcnemar_exact`.
    """
    seeds = sorted(set(variant_correct) & set(baseline_correct))
    if not seeds:
        raise ValueError(
            "Expected at least one seed scored for both variant and baseline. Received variant "
            f"seeds {sorted(variant_correct)} and baseline seeds {sorted(baseline_correct)}."
        )
    rows = [{"seed": seed, **mcnemar_exact(variant_correct[seed], baseline_correct[seed])} for seed in seeds]
    pooled = _mcnemar_counts(sum(row["variant_only"] for row in rows), sum(row["baseline_only"] for row in rows))
    rows.append({"seed": "pooled", **pooled})
    return pd.DataFrame(rows, columns=["seed", "variant_only", "baseline_only", "p_value"])


def paired_bootstrap_interval(differences, confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
                              over: str = "both") -> tuple[float, float]:
    """Percentile bootstrap interval of the mean per-example difference, over seeds and examples.

    Args:
        differences: Seeds x examples array of `variant_correct - baseline_correct` (-1, 0, 1).
        confidence: Two-sided level of the interval, in (0, 1).
        resamples: Number of bootstrap resamples.
        seed: Seed of `numpy.random.default_rng`; the same seed gives the same interval.
        over: "both" resamples seeds and examples independently, with the same example indices
            for every resampled seed (all seeds are scored on the same test images); "examples"
            resamples examples only, "seeds" seeds only.

    Returns:
        `(low, high)`: percentiles of the resampled means over all cells.

    Raises:
        ValueError: If `differences` is not a non-empty 2-D finite array, or an argument is out of range.
    """
    cells = np.asarray(differences, dtype=float)
    if cells.ndim != 2 or cells.size == 0 or not np.isfinite(cells).all():
        raise ValueError(
            "Expected differences as a non-empty 2-D array (seeds x examples) of finite numbers. "
            f"Received shape {cells.shape} with {np.count_nonzero(~np.isfinite(cells))} NaN or inf."
        )
    _check_level(confidence, "confidence")
    if over not in _OVER:
        raise ValueError(f"Unknown over={over!r}. Available: {', '.join(_OVER)}.")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"Expected a positive whole number of resamples, e.g. 2000. Received: {resamples!r}")
    # scipy.stats.bootstrap has no two-way design (seeds crossed with examples), so multinomial resampling
    # counts are drawn here. Separate streams keep the example draws the same across `over` for one seed.
    example_rng, seed_rng = (np.random.default_rng(stream) for stream in np.random.SeedSequence(seed).spawn(2))
    chunk = max(1, _CHUNK_CELLS // max(cells.shape))
    means = np.concatenate([
        _resampled_means(cells, min(chunk, resamples - start), over, example_rng, seed_rng)
        for start in range(0, int(resamples), chunk)
    ])
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def paired_test(differences, margin: float | None = None, confidence: float = 0.95) -> dict:
    """Paired t interval, difference test and equivalence test (TOST) of per-seed differences.

    With every difference equal (few seeds, coarse figures) scipy's p-values are NaN; the zero-spread limit
    is returned: the interval is the point, `p_difference` 0 unless the mean is 0 (then 1), `p_equivalence`
    0 if |mean| < margin else 1: certainty about these seeds, not about the variants.

    Args:
        differences: Per seed, `variant - baseline` of one figure (1-D, finite).
        margin: Positive equivalence margin in the figure's units (0.002: 0.2 pp); None: no equivalence test.
        confidence: Two-sided level of the t interval, in (0, 1).

    Returns:
        A dict `{"n", "mean", "std", "ci_low", "ci_high", "p_difference", "p_equivalence"}`: the two-sided
        one-sample t-test against 0; the larger of the one-sided tests against -margin and +margin (NaN
        without a margin). With n < 2, std, the interval and the p-values are NaN.

    Raises:
        ValueError: If `differences` is not 1-D and finite, or `margin` or `confidence` is out of range.
    """
    values = checked_differences(differences, margin, confidence)
    result = {"n": int(values.size), "mean": float(values.mean()) if values.size else math.nan, "std": math.nan,
              "ci_low": math.nan, "ci_high": math.nan, "p_difference": math.nan, "p_equivalence": math.nan}
    if values.size < 2:
        return result
    result["std"] = float(values.std(ddof=1))
    if np.ptp(values) == 0:
        return {**result, **_constant_test(float(values[0]), margin)}
    return {**result, **_t_tests(values, margin, confidence)}


def checked_differences(differences, margin: float | None, confidence: float) -> np.ndarray:
    """The per-seed differences as floats, once every paired test's arguments pass their checks."""
    values = np.asarray(differences, dtype=float)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError(f"Expected differences as a 1-D sequence of finite numbers. Received: {values.tolist()}")
    _check_level(confidence, "confidence")
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"Expected a positive, finite equivalence margin or None. Received: {margin!r}")
    return values


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values; NaNs pass through and leave the family.

    Args:
        p_values: 1-D p-values in [0, 1] or NaN.

    Returns:
        The adjusted p-values in input order: the i-th smallest of m times (m - i + 1), made
        non-decreasing in that order and capped at 1.

    Raises:
        ValueError: If the input is not 1-D or a value is outside [0, 1] and not NaN.
    """
    values = np.asarray(p_values, dtype=float)
    present = ~np.isnan(values)
    if values.ndim != 1 or ((values[present] < 0) | (values[present] > 1)).any():
        raise ValueError(f"Expected a 1-D sequence of p-values in [0, 1] or NaN. Received: {values.tolist()}")
    # scipy has Benjamini-Hochberg (stats.false_discovery_control) but no Holm, so it is written here.
    family = values[present]
    order = np.argsort(family, kind="stable")
    scaled = (family.size - np.arange(family.size)) * family[order]
    result = np.full_like(values, np.nan)
    result[present] = np.minimum(np.maximum.accumulate(scaled), 1.0)[np.argsort(order)]
    return result


def verdict(p_difference: float, p_equivalence: float, mean_difference: float, alpha: float = 0.05,
            higher_is_better: bool = True) -> str:
    """One of "better", "worse", "equivalent", "inconclusive" from a paired comparison.

    Equivalence comes first: a difference that is significant but inside the margin is too
    small to matter, so it reads "equivalent". NaN p-values count as not significant, so
    without a margin (`p_equivalence` NaN) "equivalent" never comes back.

    Args:
        p_difference: p-value of the test of no difference (e.g. Holm-adjusted).
        p_equivalence: p-value of the equivalence test, NaN without a margin.
        mean_difference: Mean of `variant - baseline`; its sign gives the direction.
        alpha: Significance level, in (0, 1).
        higher_is_better: True for accuracy, False for loss or time.

    Returns:
        One of `VERDICTS`.

    Raises:
        ValueError: If `alpha` is not in (0, 1), or a significant difference has no direction (mean 0 or NaN).
    """
    _check_level(alpha, "alpha")
    if p_equivalence < alpha:
        return "equivalent"
    if not p_difference < alpha:
        return "inconclusive"
    if not (mean_difference > 0 or mean_difference < 0):
        raise ValueError(
            "Expected a non-zero mean_difference to give a significant difference its direction. "
            f"Received: p_difference={p_difference!r}, mean_difference={mean_difference!r}"
        )
    return "better" if (mean_difference > 0) == higher_is_better else "worse"


def seeds_for_power(std_difference: float, effect: float, power: float = 0.8, alpha: float = 0.05,
                    max_seeds: int = 1000) -> int | None:
    """Fewest seeds for a two-sided paired t-test to detect a true mean difference `effect`.

    Exact power at n seeds: `P(T > t_crit) + P(T < -t_crit)`, T noncentral t, n - 1 df, `effect / std * sqrt(n)`.

    Args:
        std_difference: Standard deviation of the per-seed differences (e.g. from a pilot run).
        effect: The true mean difference to detect, in the same units.
        power: Wanted probability of a significant result, in (0, 1).
        alpha: Two-sided significance level, in (0, 1).
        max_seeds: Largest number of seeds considered (at least 2).

    Returns:
        The smallest n >= 2 with at least `power`, or None if `max_seeds` do not reach it.

    Raises:
        ValueError: If `std_difference` or `effect` is not positive, or an argument is out of range.
    """
    for name, value in (("std_difference", std_difference), ("effect", effect)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"Expected a positive, finite {name}. Received: {value!r}")
    _check_level(power, "power")
    _check_level(alpha, "alpha")
    if int(max_seeds) != max_seeds or max_seeds < 2:
        raise ValueError(f"Expected max_seeds as a whole number >= 2. Received: {max_seeds!r}")
    n = np.arange(2, int(max_seeds) + 1)
    df, noncentrality = n - 1, effect / std_difference * np.sqrt(n)
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    # P(T < -t_crit) as P(-T > t_crit): scipy's nct.cdf gives NaN there at a large noncentrality, nct.sf gives 0
    powers = scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.sf(critical, df, -noncentrality)
    enough = np.flatnonzero(powers >= power)
    return int(n[enough[0]]) if enough.size else None


def _mcnemar_counts(variant_only: int, baseline_only: int) -> dict:
    """The McNemar result from two discordant counts."""
    discordant = variant_only + baseline_only
    p_value = float(scipy_stats.binomtest(variant_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {"variant_only": variant_only, "baseline_only": baseline_only, "p_value": p_value}


def _resampled_means(cells: np.ndarray, count: int, over: str, example_rng, seed_rng) -> np.ndarray:
    """Means over all cells of `count` resamples, from multinomial resampling counts."""
    seeds, examples = cells.shape
    example_counts = np.ones((count, examples))
    if over != "seeds":
        example_counts = example_rng.multinomial(examples, np.full(examples, 1 / examples), size=count)
    seed_counts = np.ones((count, seeds))
    if over != "examples":
        seed_counts = seed_rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=count)
    per_seed = example_counts @ cells.T / examples  # resamples x seeds
    return (seed_counts * per_seed).sum(axis=1) / seeds


def _t_tests(values: np.ndarray, margin: float | None, confidence: float) -> dict:
    """`paired_test`'s interval and p-values from scipy's one-sample t-tests."""
    difference = scipy_stats.ttest_1samp(values, 0.0)
    interval = difference.confidence_interval(confidence)
    equivalence = math.nan
    if margin is not None:
        above_lower = scipy_stats.ttest_1samp(values, -margin, alternative="greater").pvalue
        below_upper = scipy_stats.ttest_1samp(values, margin, alternative="less").pvalue
        equivalence = float(max(above_lower, below_upper))
    return {"ci_low": float(interval.low), "ci_high": float(interval.high),
            "p_difference": float(difference.pvalue), "p_equivalence": equivalence}


def _constant_test(value: float, margin: float | None) -> dict:
    """The zero-spread limit of `paired_test`'s interval and p-values (see its docstring)."""
    equivalence = math.nan if margin is None else float(abs(value) >= margin)
    return {"ci_low": value, "ci_high": value, "p_difference": float(value == 0), "p_equivalence": equivalence}


def _check_level(value: float, name: str) -> None:
    """Raises unless `value` is strictly between 0 and 1."""
    if not 0 < value < 1:
        raise ValueError(f"Expected {name} in (0, 1), e.g. 0.05 or 0.95. Received: {value!r}")
