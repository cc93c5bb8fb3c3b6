"""The typed, frozen shape of an experiment config, and the names a config may use.

Nothing here reads files or validates a config's values: `bnlab.config.parse` builds these
objects only from values it has checked. (`ExperimentConfig.with_variants` checks only that
the names it is given, as on the command line, are labels or registered variants.)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from types import MappingProxyType
from typing import Any, Mapping

from bnlab.config.analysis import AnalysisConfig
from bnlab.config.claims import ClaimConfig
from bnlab.config.evaluation import EvaluationConfig
from bnlab.config.grid import apply_training_point, grid_label, model_overrides
from bnlab.config.probes import ProbeConfig, probes_to_dict
from bnlab.config.settings import ActivationProbeConfig, DatasetConfig, ExecutorConfig, TrackingConfig
from bnlab.models.variants import get_variant, list_variants

# Optimizer names accepted in configs -> the keyword arguments each accepts (Keras names). Keras's
# weight_decay is decoupled: each step multiplies a variable by (1 - learning_rate * weight_decay),
# which for plain SGD is L2 regularization of strength weight_decay / 2 (van Laarhoven 2017, sec. 2).
OPTIMIZERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "sgd": ("learning_rate", "momentum", "nesterov", "weight_decay"),
        "adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay"),
        "adamw": ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"),
        "rmsprop": ("learning_rate", "rho", "momentum", "epsilon", "centered"),
        "adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
        "nadam": ("learning_rate", "beta_1", "beta_2", "epsilon"),
    }
)
# which variables the optimizer's weight decay reaches (`bnlab.training.scale.restrict_weight_decay`)
WEIGHT_DECAY_GROUPS = ("all", "kernels", "normalized_kernels")
DATA_ORDERS = ("reshuffled", "repeated", "keras")  # training.data_order: bnlab.training.order
LOSSES = ("sparse_categorical_crossentropy",)  # labels are class indices, as MNIST ships them
VALIDATION_MODES = ("holdout", "test")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3 backends that can train
EXECUTORS = ("local", "dask")  # where trials run: this process, or tasks on a Dask cluster


class ConfigError(ValueError):
    """A config failed validation; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclasses.dataclass(frozen=True)
class VariantConfig:
    """One model variant of the experiment: a registry name, a label and builder overrides.

    Attributes:
        name: registry name (see `bnlab.list_variants()`).
        label: names the variant's trials and their folders; unique within a run.
        overrides: builder arguments replacing the registry's (`build_mlp`'s for the built-in
            variants); a trial variant's include its grid point's `model.ARG` values.
        grid_point: for a config with a `grid`, the dotted grid keys and the values this
            variant trains with (empty otherwise).
        base_label: the label in the config before the grid point was added to it.
        builder: for a registered variant, the "module:function" of its builder, with which a
            worker process (or a later session) registers it again; None for the built-in ones.
        preprocess: the "module:function" of a registered variant's preprocessing (None: pixels / 255).
    """

    name: str
    label: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grid_point: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    base_label: str | None = None
    builder: str | None = None
    preprocess: str | None = None


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """A Keras optimizer by name with its keyword arguments (learning_rate included)."""

    name: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How each trial is compiled and fitted.

    A trial is measured either in epochs (`epochs`; evaluated at the end of each) or in
    optimizer steps (`steps`, evaluated every `eval_every_steps`), never both.
    """

    epochs: int | None
    batch_size: int
    optimizer: OptimizerConfig
    loss: str = "sparse_categorical_crossentropy"
    eval_batch_size: int = 1024  # evaluation has no update step, so large batches only save time
    # Runs 64 training steps per call into the backend: same batches, same updates, less
    # Python overhead (about 2x faster TensorFlow epochs on a 2-core CPU; 256 was no faster:
    # `bnlab bench --explore`). Keras's torch trainer takes one step per call, so torch runs 1.
    steps_per_execution: int = 64
    # XLA-compiled steps: about 25% faster TensorFlow epochs on a 2-core CPU (bnlab bench), and
    # with JAX False would mean no jax.jit at all (about 100x slower). The same math; float
    # rounding differs by about 1e-7 relative. Keras turns it off under `deterministic`;
    # torch runs eagerly (torch.compile cost 35 s a trial and no epoch got faster).
    jit_compile: bool = True
    # TensorFlow's op determinism: identical reruns at some cost in speed; off by default
    # because seeded CPU runs were already identical in our tests.
    deterministic: bool = False
    steps: int | None = None  # step mode: optimizer steps per trial (Ioffe & Szegedy count steps)
    eval_every_steps: int | None = None  # step mode: steps between two evaluations
    save_model: bool = False  # model.keras beside each trial's tables: 1 MB a trial, so only when asked
    # the optimizer's weight decay on every variable, as Keras does; "normalized_kernels": only the
    # kernels feeding a BN layer, which BN makes scale invariant (van Laarhoven 2017)
    weight_decay_on: str = "all"
    # Trials of the same network and settings (learning rates aside) train on the model an earlier
    # trial of this process compiled, with the seed's fresh weights and a new optimizer state:
    # identical figures, without 1 to 4 s of compilation a trial (bnlab.training.compiled).
    reuse_compiled: bool = True
    # TensorFlow with XLA: each execution's steps run as one XLA loop over the training set held in
    # memory, in Keras's fit and data order: the same figures, epochs about 1.9x faster on a 2-core
    # CPU than Keras's loop of per-batch pulls and launches (2.49 -> 1.29 s: bnlab bench; bnlab.training.fused).
    fused_steps: bool = True
    # "reshuffled": a fresh permutation of the training images every epoch, drawn from the trial's
    # seed, the same on every backend (bnlab.training.order); "repeated": the first epoch's permutation
    # every epoch; "keras": Keras's own fit order, which seeded on TensorFlow repeats one permutation
    # every epoch and on JAX draws a new one (runs made before the key).
    data_order: str = "reshuffled"

    @property
    def step_mode(self) -> bool:
        """True when trials are measured in optimizer steps rather than epochs."""
        return self.steps is not None

    @property
    def evaluations(self) -> int:
        """How many evaluations (rows of the per-epoch table) a trial that runs to the end has."""
        return self.steps // self.eval_every_steps if self.step_mode else self.epochs

    def steps_per_epoch(self, train_images: int) -> int:
        """Optimizer steps in one pass over `train_images` (the last batch may be smaller)."""
        return math.ceil(train_images / self.batch_size)

    def fit_epochs(self, train_images: int) -> int:
        """The `epochs` argument of fit: in step mode, enough passes to cover `steps`."""
        if not self.step_mode:
            return self.epochs
        return math.ceil(self.steps / self.steps_per_epoch(train_images))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A validated, immutable experiment: variants x grid points x seeds, trained and measured alike.

    Build one with `load_config`; `trials` gives the (variant, seed) grid, with every grid
    point of `grid` expanded into variants of their own (`trial_variants`).
    """

    name: str
    description: str
    dataset: DatasetConfig
    variants: tuple[VariantConfig, ...]
    seeds: tuple[int, ...]
    training: TrainingConfig
    targets: tuple[float, ...]
    output_dir: str
    backend: str | None = None  # None: whatever KERAS_BACKEND / keras.json selects, as in Keras
    tracking: TrackingConfig = TrackingConfig()
    executor: ExecutorConfig = ExecutorConfig()
    # dotted training keys, builder arguments (model.ARG) or "backend" -> the values each
    # takes; every combination trains every variant
    grid: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    activation_probe: ActivationProbeConfig | None = None
    analysis: AnalysisConfig = AnalysisConfig()  # the usual levels, and no equivalence margin
    claims: tuple[ClaimConfig, ...] = ()  # none: the run is described, no paper's claim tested
    evaluation: EvaluationConfig = EvaluationConfig()  # validation with BN's moving averages only
    probes: Mapping[str, ProbeConfig] = dataclasses.field(default_factory=dict)  # none: training alone is measured

    @property
    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in config order ([{}] without a grid)."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]

    @property
    def trial_variants(self) -> tuple[VariantConfig, ...]:
        """The variants with each grid point expanded: the variants trials are trained with."""
        if not self.grid:
            return self.variants
        return tuple(
            dataclasses.replace(variant, label=grid_label(variant.label, point), grid_point=point,
                                base_label=variant.label, overrides={**variant.overrides, **model_overrides(point)})
            for variant in self.variants
            for point in self.grid_points
        )

    @property
    def trials(self) -> list[tuple[VariantConfig, int]]:
        """Every (variant, seed) pair: seed by seed, each seed over all variants in config order.

        Interleaving the variants spreads any slowdown of a shared machine over all of them
        alike, so their epoch times stay comparable.
        """
        return [(variant, seed) for seed in self.seeds for variant in self.trial_variants]

    def training_for(self, variant: VariantConfig) -> TrainingConfig:
        """The training settings of one trial variant: `training` with its grid point applied."""
        return apply_training_point(self.training, variant.grid_point)

    def backend_for(self, variant: VariantConfig) -> str | None:
        """The Keras backend one trial variant asks for: its grid point's, else `backend`."""
        return variant.grid_point.get("backend", self.backend)

    def with_variants(self, names: list[str]) -> "ExperimentConfig":
        """This config restricted to (or extended with) the given variant labels or registry names.

        Raises:
            ConfigError: a name is neither a label of this config nor a registered variant.
        """
        known = {variant.label: variant for variant in self.variants}
        unknown = [n for n in names if n not in known and n not in list_variants()]
        if unknown or not names:
            choices = ", ".join(dict.fromkeys([*known, *list_variants()]))
            raise ConfigError([f"command line: --variants: expected labels among {choices}; "
                               f"received {', '.join(unknown) or 'none'}."])
        chosen = tuple(known.get(n) or _registered(n) for n in dict.fromkeys(names))
        labels = {variant.label for variant in chosen}
        # a claim about a variant left out cannot be tested in this run
        claims = tuple(c for c in self.claims if c.variant in labels and c.baseline in labels)
        return dataclasses.replace(self, variants=chosen, claims=claims)

    def to_dict(self) -> dict:
        """Plain data that `load_config` accepts back (the resolved config of a run)."""
        data = dataclasses.asdict(self)
        data["variants"] = [_variant_dict(variant) for variant in self.variants]
        optimizer = self.training.optimizer
        data["training"]["optimizer"] = {"name": optimizer.name, **optimizer.params}
        for key in ("steps", "eval_every_steps", "epochs"):  # a step config has no epochs, and back
            if data["training"][key] is None:
                del data["training"][key]
        data["seeds"] = list(self.seeds)
        data["targets"] = list(self.targets)
        data["grid"] = {key: list(values) for key, values in self.grid.items()}
        if not self.grid:
            del data["grid"]
        if self.activation_probe is None:
            del data["activation_probe"]
        else:
            probe = data["activation_probe"]
            probe.update(units=list(probe["units"]), percentiles=list(probe["percentiles"]))
        if self.analysis == AnalysisConfig():  # without the sections, the same data as before they existed
            del data["analysis"]
        data["evaluation"] = self.evaluation.to_dict()
        if self.evaluation == EvaluationConfig():
            del data["evaluation"]
        for key, default in (("save_model", False), ("weight_decay_on", "all"), ("reuse_compiled", True),
                              ("fused_steps", True)):
            if data["training"][key] == default:  # the same data as before the option existed
                del data["training"][key]
        data["probes"] = probes_to_dict(dict(self.probes))
        if not self.probes:
            del data["probes"]
        data["claims"] = [claim.to_dict() for claim in self.claims]
        if not self.claims:
            del data["claims"]
        return data


def _registered(name: str) -> VariantConfig:
    """A config's variant for a registered name, with the references that register it again elsewhere."""
    return VariantConfig(name, name, {}, **get_variant(name).references())


def _variant_dict(variant: VariantConfig) -> dict:
    data = {"name": variant.name, "label": variant.label, "overrides": dict(variant.overrides)}
    references = {"builder": variant.builder, "preprocess": variant.preprocess}
    return {**data, **{key: value for key, value in references.items() if value is not None}}
