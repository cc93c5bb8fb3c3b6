"""`bnlab run --dry-run`: the resolved config and what a run of it would train; nothing written or trained.

Imports no Keras: a dry run answers in the time Python starts.
"""

from __future__ import annotations

import yaml

from bnlab.config import ExperimentConfig


def print_dry_run(config: ExperimentConfig) -> int:
    """Print `config` as YAML (`bnlab run` accepts it back as a file), then `trials_line(config)`."""
    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    print(trials_line(config))
    return 0


def trials_line(config: ExperimentConfig) -> str:
    """"8 trials (4 variants x 2 seeds), output folder runs/tiny", with "x P grid points" for a grid."""
    factors = [_count(len(config.variants), "variant"), _count(len(config.seeds), "seed")]
    if config.grid:
        factors.append(_count(len(config.grid_points), "grid point"))
    return f"{_count(len(config.trials), 'trial')} ({' x '.join(factors)}), output folder {config.output_dir}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
