"""Which trial labels a report shows, in which order, and which baseline each is compared with.

Pure functions of a run's config and trials table; used by the report, its findings, the figures
and the command line (`bnlab plan-seeds`). The one order of variants is `variant_order` (the
config's, grid points expanded); `trial_labels` applies it to a run, and `table_order` is the order
a function falls back on when its caller gives none (the table's first appearances).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from bnlab.runs.results import RunResults


def variant_order(config, labels_present: Iterable[str]) -> list[str]:
    """Trial labels in config order (grid points expanded), only those in `labels_present`.

    Args:
        config: the run's `ExperimentConfig`.
        labels_present: the labels that have trials, e.g. `results.trials["variant"]`.

    Returns:
        The labels of `config.trial_variants` found in `labels_present`, in config order: the order
        of every table and figure of a report, so a partial run lists its variants as the full one.

    Example:
        >>> variant_order(results.config, results.trials["variant"])
        ['no_bn', 'bn_after_activation', 'bn_before_activation', 'bn_input']
    """
    present = set(labels_present)
    return [v.label for v in config.trial_variants if v.label in present]


def trial_labels(results: RunResults) -> list[str]:
    """`variant_order` of a run: its trial labels with finished trials, in config order."""
    return variant_order(results.config, results.trials["variant"])


def table_order(table: pd.DataFrame, variants: Sequence[str] | None = None) -> list[str]:
    """The labels asked for, or else the table's `variant` labels in order of first appearance."""
    return list(dict.fromkeys(table["variant"])) if variants is None else list(variants)


def resolve_baseline(results: RunResults, baseline: str) -> str:
    """The label `baseline` stands for: itself when a label of the run, else the label of the config
    variant registered under that name (`no_bn` is `without_bn` in the Figure 1 config)."""
    labels = {v.label for v in results.config.variants} | set(trial_labels(results))
    if baseline in labels:
        return baseline
    return next((v.label for v in results.config.variants if v.name == baseline), baseline)


def baseline_pairs(results: RunResults, baseline: str) -> list[tuple[str, str]]:
    """(variant, baseline) label pairs to compare, in config order.

    `baseline` names a trial label (every other variant is compared with it), a variant label
    of the config or a registry name (`resolve_baseline`). In a run with a grid each variant is
    compared with the baseline trained at the same grid point (bn_input-learning_rate0.1 with
    no_bn-learning_rate0.1), never across grid points.
    """
    baseline = resolve_baseline(results, baseline)
    present = set(trial_labels(results))
    variants = [v for v in results.config.trial_variants if v.label in present]
    if baseline in present:
        return [(v.label, baseline) for v in variants if v.label != baseline]
    at_point = {_grid_key(v): v.label for v in variants if v.base_label == baseline}
    return [(v.label, at_point[_grid_key(v)]) for v in variants
            if v.base_label != baseline and _grid_key(v) in at_point]


def _grid_key(variant) -> str:
    return repr(sorted(variant.grid_point.items()))
