"""Experiment configs: typed, frozen dataclasses read from YAML and validated at load.

- `schema`: the dataclasses and the names a config may use (optimizers, losses, backends);
  `settings`: the small sections' dataclasses (dataset, activation probe, tracking, executor).
- `grid`: grid points: trial variant labels, trials-table columns, what a point changes.
- `analysis`, `claims`, `metrics`: what a run is tested against: the levels, the claims, the figures
  a claim may compare.
- `evaluation`, `probes`: the optional evaluation modes and mechanism probes.
- `parse`: validation of a parsed mapping, one line per problem.
- `loader`: finding configs by name, reading YAML, `load_config`.
"""

from bnlab.config.analysis import AnalysisConfig
from bnlab.config.claims import ClaimConfig
from bnlab.config.grid import grid_column, grid_label
from bnlab.config.loader import (
    apply_overrides,
    config_dirs,
    list_configs,
    load_config,
    resolve_config_path,
)
from bnlab.config.metrics import CLAIM_METRICS, claim_metrics
from bnlab.config.schema import (
    BACKENDS,
    EXECUTORS,
    LOSSES,
    OPTIMIZERS,
    VALIDATION_MODES,
    ConfigError,
    ExperimentConfig,
    OptimizerConfig,
    TrainingConfig,
    VariantConfig,
)
from bnlab.config.settings import ActivationProbeConfig, DatasetConfig, ExecutorConfig, TrackingConfig

__all__ = [
    "BACKENDS", "CLAIM_METRICS", "EXECUTORS", "LOSSES", "OPTIMIZERS", "VALIDATION_MODES",
    "ActivationProbeConfig", "AnalysisConfig", "ClaimConfig", "ConfigError", "DatasetConfig", "ExecutorConfig",
    "ExperimentConfig", "OptimizerConfig", "TrackingConfig", "TrainingConfig", "VariantConfig",
    "apply_overrides", "claim_metrics", "config_dirs", "grid_column", "grid_label", "list_configs", "load_config",
    "resolve_config_path",
]
