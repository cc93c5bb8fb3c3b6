"""Validation of a parsed YAML mapping into an `ExperimentConfig`: the top level, the grid
and the activation probe (the sections are in `sections`, the variants in `variants`, the
primitives in `problems`). The loader raises all problems together as one `ConfigError`,
before anything is trained or written."""

from __future__ import annotations

import dataclasses

from bnlab.config import sections
from bnlab.config.analysis import parse_analysis
from bnlab.config.claims import parse_claims
from bnlab.config.evaluation import parse_evaluation
from bnlab.config.grid import MODEL_PREFIX, grid_column, value_text
from bnlab.config.probes import parse_probes, probe_metrics
from bnlab.config.problems import (
    REQUIRED,
    Problems,
    check_keys,
    get_section,
    get_value,
    is_int,
    is_number,
    is_text,
    positive_int,
)
from bnlab.config.schema import BACKENDS, OPTIMIZERS, ExperimentConfig, TrainingConfig
from bnlab.config.settings import ActivationProbeConfig
from bnlab.config.variants import (
    check_builder_settings,
    model_argument_problem,
    model_value_problems,
    parse_variants,
)
from bnlab.models.variants import get_variant

_DEFAULT_HIDDEN_UNITS = (300, 100)  # build_mlp's default, for checking activation_probe


_TOP_KEYS = ("name", "description", "dataset", "variants", "seeds", "training", "targets", "output_dir",
             "backend", "tracking", "executor", "grid", "activation_probe", "analysis", "claims", "evaluation",
             "probes")


def parse_experiment(data: dict, problems: Problems) -> ExperimentConfig | None:
    """Validate a whole config mapping; None (with problems recorded) when it is invalid."""
    check_keys(data, _TOP_KEYS, "", problems)
    name = get_value(data, "name", "", problems, is_text, "a non-empty string")
    description = get_value(data, "description", "", problems, lambda v: isinstance(v, str), "a string", default="")
    dataset = sections.parse_dataset(data, problems)
    variants = parse_variants(data.get("variants", REQUIRED), problems)
    seeds = sections.parse_seeds(data.get("seeds", REQUIRED), problems)
    training = sections.parse_training(data, problems)
    targets = sections.parse_targets(data.get("targets", REQUIRED), problems)
    backend = get_value(data, "backend", "", problems, lambda v: v is None or v in BACKENDS,
                     f"null or one of {', '.join(BACKENDS)}", default=None)
    output_dir = get_value(
        data, "output_dir", "", problems, is_text, "a folder path", default=f"runs/{name}"
    )
    tracking, executor = sections.parse_tracking(data, problems), sections.parse_executor(data, problems)
    probe, analysis = _parse_probe(data, problems), parse_analysis(data, problems)
    evaluation, probes = parse_evaluation(data, problems), parse_probes(data, problems)
    if problems.lines:
        return None
    grid = _parse_grid(data, training, dataset, variants, problems)
    if "backend" in grid and backend is not None:
        problems.add("backend", "null when grid.backend lists the backends (each trial runs on its own)", backend)
    sections.check_dataset_fits(dataset, training, "training", problems)
    if not problems.lines:
        check_builder_settings(variants, grid, training, problems)
    _check_probe_fits(probe, variants, grid, problems)
    claims = parse_claims(data, tuple(v.label for v in variants), targets, grid, analysis, problems,
                          modes=evaluation.modes, probe_metrics=probe_metrics(probes))
    if problems.lines:
        return None
    return ExperimentConfig(
        name, description, dataset, variants, seeds, training, targets, output_dir, backend,
        tracking, executor, grid, probe, analysis, claims, evaluation, probes,
    )


def _parse_grid(data, training, dataset, variants, problems) -> dict[str, tuple]:
    """grid: dotted keys -> lists of values; each value is checked like the key itself."""
    value = data.get("grid", {})
    expected = ("a mapping of dotted training keys (or model.ARG, backend) to lists of values, e.g. "
                "{training.optimizer.learning_rate: [0.01, 0.1, 1.0]}")
    if not isinstance(value, dict):
        problems.add("grid", expected, value)
        return {}
    grid = {}
    for key, values in value.items():
        name, problem = f"grid.{key}", _grid_key_problem(str(key), training, variants)
        if problem:
            problems.add(name, problem, "an unknown key", raw=True)
        elif not isinstance(values, list) or not values:
            problems.add(name, "a non-empty list of values", values)
        elif len({repr(v) for v in values}) < len(values):
            problems.add(name, "distinct values", values)
        elif len({value_text(v) for v in values}) < len(values):  # the labels name the trial folders
            problems.add(name, "values that differ in trial labels (they show them as "
                         f"{', '.join(value_text(v) for v in values)})", values)
        else:
            grid[key] = tuple(values)
    leaves = [grid_column(key) for key in grid]
    if len(set(leaves)) < len(leaves):
        problems.add("grid", "keys whose last parts differ (they name columns and trial labels)", list(grid))
    for key, values in grid.items():
        for index, value in enumerate(values):
            _check_grid_value(f"grid.{key}[{index}]", key, value, (training, dataset, variants), problems)
    return grid


def _grid_key_problem(key: str, training, variants) -> str | None:
    """What a grid key should be, when it is not one; None when it is."""
    if key.startswith(MODEL_PREFIX):  # a builder argument: every variant's builder must accept it
        return model_argument_problem(key[len(MODEL_PREFIX):], variants)
    if _grid_key_ok(key, training):
        return None
    return ("backend, or a training setting: training.FIELD or training.optimizer.PARAM, or a builder argument: "
            f"model.ARG (allowed fields: {', '.join(f for f in sections.TRAINING_FIELDS if f != 'optimizer')}; "
            f"optimizer params: {', '.join(OPTIMIZERS[training.optimizer.name])})")


def _grid_key_ok(key, training) -> bool:
    if key == "backend":  # each backend's trials run in a process of their own
        return True
    parts = str(key).split(".")
    if parts[0] != "training" or len(parts) not in (2, 3):
        return False
    if len(parts) == 3:
        return parts[1] == "optimizer" and parts[2] in OPTIMIZERS[training.optimizer.name]
    return parts[1] in sections.TRAINING_FIELDS and parts[1] != "optimizer"


def _check_grid_value(name, key, value, context, problems) -> None:
    """Validate one grid value as its key (the config's training with it put in, or a builder
    override of every variant), reporting its problems under `name`."""
    training, dataset, variants = context
    if key == "backend":
        if value not in BACKENDS:
            problems.add(name, f"one of {', '.join(BACKENDS)}", value)
        return
    if key.startswith(MODEL_PREFIX):
        for expected, received in model_value_problems(key[len(MODEL_PREFIX):], value, variants):
            problems.add(name, expected, received)
        return
    inner = Problems(problems.origin, set())
    section = {"training": _training_mapping(training)}
    *_, leaf = key.split(".")
    target = section["training"]["optimizer"] if key.count(".") == 2 else section["training"]
    target[leaf] = value
    parsed = sections.parse_training(section, inner)
    if not inner.lines:
        sections.check_dataset_fits(dataset, parsed, "training", inner)
    for line in inner.lines:
        problems.lines.append(line.replace(f": {key}: ", f": {name}: ", 1) if f": {key}: " in line
                              else f"{line[:-1]} (with {name} = {value!r}).")


def _training_mapping(training: TrainingConfig) -> dict:
    data = {k: v for k, v in dataclasses.asdict(training).items() if v is not None}
    data["optimizer"] = {"name": training.optimizer.name, **training.optimizer.params}
    return data


_PROBE_KEYS = ("hidden_layer", "units", "probe_examples", "percentiles")


def _parse_probe(data, problems) -> ActivationProbeConfig | None:
    if "activation_probe" not in data:
        return None
    section = get_section(data, "activation_probe", _PROBE_KEYS, problems)
    if section is None:
        return None
    default = ActivationProbeConfig
    key = "activation_probe"
    hidden_layer = get_value(section, "hidden_layer", key, problems, positive_int,
                          "a positive integer: 1 for the first hidden layer")
    units = get_value(section, "units", key, problems,
                   lambda v: isinstance(v, list) and v and all(is_int(u) and u >= 0 for u in v),
                   "a non-empty list of unit indices (integers from 0)", list(default.units))
    examples = get_value(section, "probe_examples", key, problems, positive_int, "a positive integer",
                      default.probe_examples)
    percentiles = get_value(section, "percentiles", key, problems,
                         lambda v: isinstance(v, list) and v and all(is_number(p) and 0 <= p <= 100 for p in v),
                         "a non-empty list of numbers from 0 to 100", list(default.percentiles))
    if hidden_layer is None:
        return None
    return ActivationProbeConfig(hidden_layer, tuple(units), examples, tuple(float(p) for p in percentiles))


def _check_probe_fits(probe, variants, grid, problems) -> None:
    """The watched layer and units exist in every MLP variant's network, at every grid point (the
    first misfit is reported); a user's own model is checked when the probe looks for its layer."""
    if probe is None:
        return
    for index, variant in enumerate(variants):
        if not get_variant(variant.name).is_mlp:
            continue
        own = variant.overrides.get("hidden_units", _DEFAULT_HIDDEN_UNITS)
        for hidden in grid.get(f"{MODEL_PREFIX}hidden_units", (own,)):
            if problems.lines:
                return
            where = f"variants[{index}] ({variant.label})"
            if f"{MODEL_PREFIX}hidden_units" in grid:
                where += f" with grid.{MODEL_PREFIX}hidden_units = {list(hidden)}"
            _check_probe_fits_layers(probe, tuple(hidden), where, problems)


def _check_probe_fits_layers(probe, hidden: tuple[int, ...], where: str, problems) -> None:
    if probe.hidden_layer > len(hidden):
        problems.add("activation_probe.hidden_layer", f"at most {len(hidden)}, the hidden layers of {where}",
                     probe.hidden_layer)
    elif max(probe.units) >= hidden[probe.hidden_layer - 1]:
        problems.add("activation_probe.units", f"unit indices below {hidden[probe.hidden_layer - 1]}, "
                     f"the width of hidden layer {probe.hidden_layer} of {where}", max(probe.units))
