"""The optional `analysis` section: the levels and the equivalence margin every claim is tested with."""

from __future__ import annotations

import dataclasses

from bnlab.config.problems import Problems, get_section, get_value, is_int, is_number

_ANALYSIS_KEYS = ("equivalence_margin", "alpha", "confidence", "bootstrap_resamples")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """How every claim of a run is tested.

    Attributes:
        equivalence_margin: the largest difference of no practical importance, in the metric's
            units (0.003: 0.3 points of accuracy); the default margin of every claim on an accuracy
            figure (`ACCURACY_METRICS`); claims on other figures (epochs, seconds) give their own.
        alpha: the level of every test.
        confidence: the level of every interval.
        bootstrap_resamples: resamples of each bootstrap interval.
    """

    equivalence_margin: float | None = None  # None: no difference is ever called negligible unless a claim says so
    alpha: float = 0.05  # the conventional level, so results read like the papers they test
    confidence: float = 0.95  # intervals that match alpha = 0.05
    bootstrap_resamples: int = 2000  # 95% percentile intervals settle to about 1% by 2000 (Efron & Tibshirani 1993)


def parse_analysis(data: dict, problems: Problems) -> AnalysisConfig:
    """The `analysis` section (all defaults when it is absent); problems recorded, defaults kept."""
    section = get_section(data, "analysis", _ANALYSIS_KEYS, problems, required=False) or {}
    default, key = AnalysisConfig(), "analysis"
    margin = get_value(section, "equivalence_margin", key, problems, lambda v: v is None or _positive(v),
                       "null or a positive number: the largest difference of no practical importance, in the "
                       "metric's units (e.g. 0.003 for 0.3 points of accuracy)", default.equivalence_margin)
    alpha = get_value(section, "alpha", key, problems, lambda v: is_number(v) and 0 < v < 0.5,
                      "a number in (0, 0.5): the level of every test", default.alpha)
    confidence = get_value(section, "confidence", key, problems, lambda v: is_number(v) and 0 < v < 1,
                           "a number in (0, 1): the level of every interval", default.confidence)
    resamples = get_value(section, "bootstrap_resamples", key, problems, lambda v: is_int(v) and v >= 100,
                          "an integer of at least 100 (fewer leave the interval's ends noisy)",
                          default.bootstrap_resamples)
    return AnalysisConfig(None if margin is None else float(margin), float(alpha), float(confidence), resamples)


def _positive(value) -> bool:
    return is_number(value) and value > 0
