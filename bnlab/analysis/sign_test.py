"""The exact sign test of paired differences: for outcomes that split, where a t interval is no guide.

A paired t interval's cover rests on the per-seed differences being roughly normal. Some are far
from it: at a learning rate near the edge of stability a plain network trains in some seeds and
diverges in others, so its differences from a BN network are a few points in some seeds and 70 to
90 points in the rest (docs/WHY_BN_HELPS.md). The sign test asks whether the median difference is
zero: it counts the seeds on each side, and its p is exact under the binomial whatever the
differences' shape. It needs seeds: with all n on one side its p is 2^(1-n), so 6 seeds to go below
0.05, more under a Holm correction. scipy's `quantile_test` is that test; its interval is the
distribution-free one of the median, from order statistics (none with fewer than 6 seeds at 95%:
the range of 5 covers 94%). A zero difference (two variants that both diverge to the same chance
accuracy) counts against the claim: scipy puts ties on the side that makes p larger, where the
textbook sign test drops them.

Example:
    >>> result = paired_sign_test([0.03, 0.02, 0.70, 0.88, 0.69, 0.02, 0.8, 0.75])
    >>> round(result["p_difference"], 4), result["median"]
    (0.0078, 0.695)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from bnlab.analysis.significance import checked_differences


def paired_sign_test(differences, margin: float | None = None, confidence: float = 0.95) -> dict:
    """Sign test, median interval and equivalence test of per-seed differences.

    Args:
        differences: Per seed, `variant - baseline` of one figure (1-D, finite).
        margin: Positive equivalence margin in the figure's units; None skips the equivalence test.
        confidence: Two-sided level of the median's interval, in (0, 1).

    Returns:
        A dict `{"n", "mean", "std", "median", "ci_low", "ci_high", "p_difference", "p_equivalence"}`
        in the keys of `significance.paired_test`, plus the median: `ci_low`/`ci_high` is the
        median's distribution-free interval (NaN when the seeds are too few for the level),
        `p_difference` the two-sided exact sign test of a zero median, `p_equivalence` the larger
        of the one-sided sign tests against -margin and +margin (NaN without a margin). With n < 2,
        everything but n, mean and median is NaN.

    Raises:
        ValueError: If `differences` is not 1-D and finite, or `margin` or `confidence` is out of range.
    """
    values = checked_differences(differences, margin, confidence)
    empty = values.size == 0
    result = {"n": int(values.size), "mean": math.nan if empty else float(values.mean()), "std": math.nan,
              "median": math.nan if empty else float(np.median(values)), "ci_low": math.nan, "ci_high": math.nan,
              "p_difference": math.nan, "p_equivalence": math.nan}
    if values.size < 2:
        return result
    test = scipy_stats.quantile_test(values, q=0.0, p=0.5)
    interval = test.confidence_interval(confidence)
    result.update(std=float(values.std(ddof=1)), ci_low=float(interval.low), ci_high=float(interval.high),
                  p_difference=float(test.pvalue))
    if margin is not None:
        above = scipy_stats.quantile_test(values, q=-margin, p=0.5, alternative="greater").pvalue
        below = scipy_stats.quantile_test(values, q=margin, p=0.5, alternative="less").pvalue
        result["p_equivalence"] = float(max(above, below))
    return result
