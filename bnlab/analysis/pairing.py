"""Which trial labels a report shows, in which order, and which baseline each is compared with.

Pure functions of a run's config and trials table; used by the report, its findings and the
command line (`bnlab plan-seeds`).
"""

from __future__ import annotations

from bnlab.runs.results import RunResults


def variant_order(results: RunResults) -> list[str]:
    """Trial labels in config order (grid points expanded), only those with finished trials."""
    present = set(results.trials["variant"])
    return [v.label for v in results.config.trial_variants if v.label in present]


def resolve_baseline(results: RunResults, baseline: str) -> str:
    """The label `baseline` stands for: itself when a label of the run, else the label of the config
    variant registered under that name (`no_bn` is `without_bn` in the Figure 1 config)."""
    labels = {v.label for v in results.config.variants} | set(variant_order(results))
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
    present = set(variant_order(results))
    variants = [v for v in results.config.trial_variants if v.label in present]
    if baseline in present:
        return [(v.label, baseline) for v in variants if v.label != baseline]
    at_point = {_grid_key(v): v.label for v in variants if v.base_label == baseline}
    return [(v.label, at_point[_grid_key(v)]) for v in variants
            if v.base_label != baseline and _grid_key(v) in at_point]


def _grid_key(variant) -> str:
    return repr(sorted(variant.grid_point.items()))
