"""The small sections of a config: the dataset, the activation probe, tracking and the executor.

Frozen dataclasses whose defaults carry their reasons; `bnlab.config.sections` and
`bnlab.config.parse` validate the values they are built from.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Which MNIST images train and validate.

    Attributes:
        validation: "holdout" (the last `validation_size` training images) or "test".
        validation_size: images held out when validation is "holdout".
        train_subset: keep only this many training images (None: all of them).
        stratify: take the subset class-stratified instead of the first N.
        binarize: threshold every pixel to 0 or 255 (Ioffe & Szegedy 2015, sec. 4.1, feed
            "a 28x28 binary image"); each variant's input scaling still applies afterwards.
    """

    validation: str = "holdout"  # keeps the test set untouched until the final evaluation
    validation_size: int = 5000  # the classic 55,000 / 5,000 MNIST split
    train_subset: int | None = None  # None: every remaining training image
    stratify: bool = False  # first N in the published order unless asked
    binarize: bool = False  # grey levels, as MNIST ships them

    @property
    def remaining_images(self) -> int:
        """MNIST training images left after the validation hold-out."""
        return 60000 - (self.validation_size if self.validation == "holdout" else 0)

    @property
    def train_images(self) -> int:
        """How many MNIST images each trial trains on."""
        return self.train_subset or self.remaining_images


@dataclasses.dataclass(frozen=True)
class ActivationProbeConfig:
    """Which nonlinearity inputs `ActivationPercentiles` records at every evaluation.

    Attributes:
        hidden_layer: 1-based index of the hidden layer whose nonlinearity input is watched
            (after BN where BN comes before the activation).
        units: indices of the units recorded.
        probe_examples: the first N validation images form the fixed probe batch.
        percentiles: recorded over the probe examples, per unit.
    """

    hidden_layer: int
    units: tuple[int, ...] = tuple(range(10))  # ten units: a "typical unit" plus its neighbours
    probe_examples: int = 1000  # enough for stable 15th/85th percentiles, cheap to run
    percentiles: tuple[float, ...] = (15.0, 50.0, 85.0)  # Ioffe & Szegedy 2015, Figure 1(b, c)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Where else a run reports, besides its run folder. Both need no server."""

    mlflow: bool = False  # one MLflow run per trial in MLflow's default local store (pip install -e ".[mlflow]")
    tensorboard: bool = False  # Keras's TensorBoard callback, logs under RUN_DIR/tensorboard/


@dataclasses.dataclass(frozen=True)
class ExecutorConfig:
    """Where the trials run. Not part of a run's identity: a run may resume on another executor."""

    name: str = "local"  # one trial after another in this process, as bnlab always ran them
    scheduler: str | None = None  # dask: a running scheduler (tcp://HOST:8786); None: a LocalCluster for the run
    # dask LocalCluster only: worker processes of one thread each; 2 matches a 2-core laptop,
    # more workers than cores only share the same cores
    workers: int = 2
