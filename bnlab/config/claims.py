"""What a run is tested against: the `claims` section of a config (the levels are `analysis`'s).

A claim is one sentence of a paper turned into a comparison of two variants on one per-trial
figure of the run's trials table ("BN reaches 97% in fewer epochs than no BN"), or of one variant on
two figures in the same units ("its PreciseBN accuracy is higher than its moving-average one");
In a config with a grid, both sides are compared at one grid point (`at`), or the baseline at
another (`baseline_at`: one network with weight decay against itself without). Optional.

The dataclass is here, beside its validation; `parse` calls `parse_claims` once the variants,
targets, grid, evaluation modes and probes are known.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from bnlab.config.analysis import AnalysisConfig
from bnlab.config.grid import grid_label
from bnlab.config.metrics import ACCURACY_METRICS, EXPECTATIONS, claim_metrics, metric_units, mode_hint
from bnlab.config.problems import Problems, check_keys, get_value, is_number, is_text

_CLAIM_KEYS = ("id", "statement", "source", "metric", "variant", "baseline", "baseline_metric", "expect", "margin",
               "at", "baseline_at", "test")
CLAIM_TESTS = ("t", "sign")  # bnlab.analysis.significance.paired_test, bnlab.analysis.sign_test.paired_sign_test


@dataclasses.dataclass(frozen=True)
class ClaimConfig:
    """One claim: `variant` on `metric` is `expect` (higher, lower, equivalent) than `baseline` on `baseline_metric`.

    Attributes:
        id: a short name for tables, unique within the config.
        statement: the claim in words.
        source: where it comes from (paper, section, figure).
        metric: a per-trial column of the trials table (see `claim_metrics`).
        variant: the label (under `variants`, without grid values) of the variant claimed about.
        baseline: the label of the variant it is compared with.
        expect: "higher", "lower" or "equivalent", in the metric's raw direction.
        margin: the equivalence margin, resolved: the claim's own, else `analysis.equivalence_margin`.
        at: for a config with a grid, the grid point compared at (every grid key -> one of its values).
        baseline_metric: the baseline's metric, in the units of `metric`; None: `metric` itself. With it,
            `baseline` may be `variant` (one network's PreciseBN against its moving-average accuracy).
        baseline_at: the baseline's grid point when it is not `at` (empty: `at`). With it, `baseline`
            may be `variant` (one network with weight decay against itself without).
        test: "t", the paired t-test on the mean difference (the default), or "sign", the exact sign
            test on the median difference, for outcomes that split (a network that trains in some
            seeds and diverges in others).
    """

    id: str
    statement: str
    source: str
    metric: str
    variant: str
    baseline: str
    expect: str
    margin: float | None = None  # None: no margin; only a higher or lower claim can do without one
    at: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # empty: a config without a grid
    baseline_metric: str | None = None  # None: both sides on `metric`, the usual claim about two variants
    baseline_at: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # empty: the baseline at `at`
    test: str = "t"

    def labels(self) -> tuple[str, str]:
        """The trial variant labels compared, (variant, baseline), with their grid points added."""
        return grid_label(self.variant, self.at), grid_label(self.baseline, self.baseline_at or self.at)

    def to_dict(self) -> dict:
        """Plain data that `parse_claims` accepts back (the margin resolved, as loaded)."""
        data = dataclasses.asdict(self)
        if self.margin is None:
            del data["margin"]
        if not self.at:
            del data["at"]
        if self.baseline_metric is None:
            del data["baseline_metric"]
        if not self.baseline_at:
            del data["baseline_at"]
        if self.test == "t":
            del data["test"]
        return data


@dataclasses.dataclass(frozen=True)
class _Context:
    """What a claim is checked against: the config's variant labels, metrics, grid and default margin."""

    labels: tuple[str, ...]
    metrics: tuple[str, ...]
    grid: Mapping[str, tuple]
    margin: float | None


def parse_claims(data: dict, labels: tuple[str, ...], targets: tuple[float, ...], grid: Mapping[str, tuple],
                 analysis: AnalysisConfig, problems: Problems, *, modes: tuple[str, ...] = (),
                 probe_metrics: tuple[str, ...] = ()) -> tuple[ClaimConfig, ...]:
    """The `claims` list (empty when absent), checked against the config's variants, targets and grid.

    Args:
        data: the whole config mapping.
        labels: the labels of the config's `variants` (before any grid point is added).
        targets: the config's validation accuracy targets (they name the epochs_to_T metrics).
        grid: the config's grid (empty without one).
        analysis: the parsed `analysis` section (its margin is each claim's default).
        problems: where each problem is recorded, keyed like `claims[0].metric`.
        modes: the config's `evaluation.modes` (each adds its final validation accuracy to the metrics).
        probe_metrics: the figures of the config's probes (`bnlab.config.probes.probe_metrics`).

    Returns:
        The valid claims, in config order.
    """
    value = data.get("claims", [])
    if not isinstance(value, list):
        problems.add("claims", "a list of claims, each a mapping with keys " + ", ".join(_CLAIM_KEYS), value)
        return ()
    context = _Context(tuple(labels), claim_metrics(targets, modes, probe_metrics), grid, analysis.equivalence_margin)
    claims = [_parse_claim(item, index, context, problems) for index, item in enumerate(value)]
    _check_ids(claims, problems)
    return tuple(claim for claim in claims if claim is not None)


def _parse_claim(item, index: int, context: _Context, problems: Problems) -> ClaimConfig | None:
    key = f"claims[{index}]"
    if not isinstance(item, dict):
        problems.add(key, "a mapping with keys " + ", ".join(_CLAIM_KEYS), item)
        return None
    check_keys(item, _CLAIM_KEYS, key, problems)
    claim_id = get_value(item, "id", key, problems, is_text, "a non-empty string naming the claim in tables",
                         f"claim{index + 1}")
    statement = get_value(item, "statement", key, problems, is_text, "a non-empty string: the claim in words")
    source = get_value(item, "source", key, problems, is_text, "a non-empty string: where the claim comes from, "
                       "e.g. 'Ioffe & Szegedy 2015, sec. 4.1, Fig. 1(a)'")
    metrics = ", ".join(context.metrics)
    metric = get_value(item, "metric", key, problems, lambda v: v in context.metrics, f"one of {metrics} (the per-"
                       f"trial figures of the trials table){mode_hint(item.get('metric'), context.metrics)}")
    ok, baseline_metric = _parse_baseline_metric(item, key, metric, context, problems)
    variant, baseline = (_parse_label(item, role, key, context, problems) for role in ("variant", "baseline"))
    at, baseline_at = _parse_at(item, key, context.grid, problems), _parse_baseline_at(item, key, context, problems)
    if variant is not None and variant == baseline and ok and baseline_metric is None and baseline_at in ({}, at):
        problems.add(f"{key}.baseline", f"a variant label other than {key}.variant ({variant}): a claim compares two "
                     "variants, or one variant on two metrics (a baseline_metric other than metric) or at two grid "
                     "points (a baseline_at other than at)", baseline)
        baseline = None
    expect = get_value(item, "expect", key, problems, lambda v: v in EXPECTATIONS,
                       f"one of {', '.join(EXPECTATIONS)} (the metric's own direction: for epochs_to_T, "
                       "lower means faster)")
    default_margin = context.margin if metric in ACCURACY_METRICS else None  # a margin is in the metric's units
    ok_margin, margin = _parse_margin(item, key, expect, default_margin, problems)
    test = get_value(item, "test", key, problems, lambda v: v in CLAIM_TESTS, "one of t (paired t-test on the mean "
                     "difference) or sign (exact sign test on the median difference, for outcomes that split)", "t")
    if None in (statement, source, metric, variant, baseline, expect, at, baseline_at, test) or not (ok and ok_margin):
        return None
    return ClaimConfig(claim_id, statement, source, metric, variant, baseline, expect, margin, at, baseline_metric,
                       baseline_at if baseline_at != at else {}, test)


def _parse_baseline_metric(item, key: str, metric, context: _Context, problems: Problems) -> tuple[bool, str | None]:
    """(valid, the baseline's metric): None when absent or the claim's own metric."""
    if "baseline_metric" not in item:
        return True, None
    value, units = item["baseline_metric"], None if metric is None else metric_units(metric)
    same = [choice for choice in context.metrics if units in (None, metric_units(choice))]
    if value not in same:  # without a valid metric (its problem is recorded) any metric is checked for
        in_units = "" if units is None else f" in the units of {key}.metric ({metric}: {units})"
        problems.add(f"{key}.baseline_metric", f"a metric{in_units}: one of {', '.join(same)}"
                     f"{mode_hint(value, context.metrics)}", value)
        return False, None
    return True, None if value == metric else value


def _parse_label(item, role: str, key: str, context: _Context, problems: Problems) -> str | None:
    hint = "; grid values go in at, not in the label" if context.grid else ""
    return get_value(item, role, key, problems, lambda v: isinstance(v, str) and v in context.labels,
                     f"a variant label of this config: one of {', '.join(context.labels)}{hint}")


def _parse_margin(item, key: str, expect, default: float | None, problems: Problems) -> tuple[bool, float | None]:
    """(valid, margin): the claim's own margin, else the analysis default."""
    value = item.get("margin")
    if value is not None and not _positive(value):
        problems.add(f"{key}.margin", "a positive number: the largest difference of no practical importance, "
                     "in the metric's units", value)
        return False, None
    margin = default if value is None else float(value)
    if expect == "equivalent" and margin is None:
        problems.add(f"{key}.margin", f"a margin: set {key}.margin or analysis.equivalence_margin (expect: "
                     "equivalent needs the largest difference of no practical importance, in the metric's units); "
                     "neither is set")
        return False, None
    return True, margin


def _parse_baseline_at(item, key: str, context: _Context, problems: Problems) -> dict | None:
    """The baseline's own grid point ({} when absent: the baseline is compared at `at`)."""
    if "baseline_at" not in item:
        return {}
    if not context.grid:
        problems.add(f"{key}.baseline_at", "no baseline_at (this config has no grid)", item["baseline_at"])
        return None
    return _parse_at(item, key, context.grid, problems, field="baseline_at")


def _parse_at(item, key: str, grid: Mapping[str, tuple], problems: Problems, field: str = "at") -> dict | None:
    """The grid point a claim compares at: every grid key with one of its values ({} without a grid)."""
    name, value = f"{key}.{field}", item.get(field)
    if not grid:
        if value not in (None, {}):
            problems.add(name, "no at (this config has no grid: each variant has one set of trials to compare)", value)
            return None
        return {}
    choices = "; ".join(f"{grid_key}: one of {_values_text(values)}" for grid_key, values in grid.items())
    if not isinstance(value, dict):
        missing = "; the key is missing" if field not in item else ""
        problems.add(name, f"a mapping with a value for every grid key ({choices}){missing}",
                     *(() if missing else (value,)))
        return None
    check_keys(value, tuple(grid), name, problems)
    point = {grid_key: _grid_value(grid_key, values, value, name, problems) for grid_key, values in grid.items()}
    return None if _MISSING in point.values() or set(value) - set(grid) else point


_MISSING = object()  # marks a grid key whose value in `at` is missing or not one of the grid's


def _grid_value(grid_key: str, values: tuple, point: dict, name: str, problems: Problems):
    """The grid's own value that point[grid_key] names (so labels match the trials'), or _MISSING."""
    expected = f"one of the grid's values {_values_text(values)}"
    if grid_key not in point:
        problems.add(f"{name}.{grid_key}", f"{expected}; the key is missing")
        return _MISSING
    given = point[grid_key]
    for value in values:  # 1 names the grid's 1.0, but true does not name 1
        if value == given and isinstance(value, bool) == isinstance(given, bool):
            return value
    problems.add(f"{name}.{grid_key}", expected, given)
    return _MISSING


def _check_ids(claims: list[ClaimConfig | None], problems: Problems) -> None:
    first: dict[str, int] = {}
    for index, claim in enumerate(claims):
        if claim is None:
            continue
        if claim.id in first:
            problems.add(f"claims[{index}].id", f"an id no other claim has (claims[{first[claim.id]}] has it; a "
                         "claim without an id is claimN, N its position from 1)", claim.id)
        else:
            first[claim.id] = index


def _values_text(values) -> str:
    return ", ".join("true" if v is True else "false" if v is False else str(v) for v in values)


def _positive(value) -> bool:
    return is_number(value) and value > 0
