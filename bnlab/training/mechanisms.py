"""A trial's mechanism probes (the config's `probes` section): set up, run beside training, summed up.

`start_probes` measures the gradients at initialization at once and returns the callbacks that
record during training; `TrialProbes.tables()` gives the tables the run folder keeps, and
`TrialProbes.summary()` the per-trial figures of the trials table that claims compare
(`bnlab.config.probes.PROBE_METRICS`). Every probe reads the model on a fixed batch, outside the
compiled training step, and changes nothing in it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import keras
import numpy as np
import pandas as pd

from bnlab.config.probes import ProbeConfig
from bnlab.training.gradients import gradient_norms
from bnlab.training.mechanism_probes import CovariateShiftProbe, LandscapeProbe
from bnlab.training.scale import KernelNorms

STEP_SIZE_FACTORS = (0.5, 1.0, 2.0, 4.0)  # landscape: step sizes around the learning rate (Santurkar 2018, Fig. 4)


@dataclasses.dataclass
class TrialProbes:
    """The probes of one trial: the table measured at initialization and the recording callbacks."""

    init_gradients: pd.DataFrame | None
    callbacks: dict[str, keras.callbacks.Callback]

    def tables(self) -> dict[str, pd.DataFrame]:
        """Probe name -> its table, for the trial's folder."""
        tables = {name: callback.as_frame() for name, callback in self.callbacks.items()}
        return tables if self.init_gradients is None else {"init_gradients": self.init_gradients, **tables}

    def summary(self) -> dict[str, float]:
        """The per-trial figures of every probe that ran (columns of the trials table)."""
        return probe_summary(self.tables())


def start_probes(probes: Mapping[str, ProbeConfig], model, x_train, y_train, every_steps: int,
                 learning_rate: float) -> TrialProbes:
    """Measure the gradients at initialization (if asked) and make the recording callbacks.

    Args:
        probes: the config's probes (`ExperimentConfig.probes`).
        model: the compiled, untrained model.
        x_train, y_train: the training set, preprocessed; each probe's batch is its first `examples`.
        every_steps: the steps between two evaluations (a probe's default interval).
        learning_rate: the optimizer's initial learning rate (the landscape's default step sizes).

    Returns:
        The trial's probes.
    """
    init = None
    if "init_gradients" in probes:
        count = probes["init_gradients"].examples
        init = gradient_norms(model, x_train[:count], y_train[:count])
    callbacks = {name: _recorder(name, probes[name], x_train, y_train, every_steps, learning_rate)
                 for name in _RECORDERS if name in probes}
    return TrialProbes(init, callbacks)


def _recorder(name: str, settings: ProbeConfig, x_train, y_train, every_steps: int, learning_rate: float):
    """The callback that records probe `name` on its batch, every `every_n_steps` (default: each evaluation)."""
    every = settings.every_n_steps or every_steps
    return _RECORDERS[name](settings, x_train[: settings.examples], y_train[: settings.examples], every,
                            learning_rate)


# probe name -> its callback, from (settings, probe images, labels, steps between records, initial learning rate)
_RECORDERS = {
    "landscape": lambda settings, images, labels, every, learning_rate: LandscapeProbe(
        images, labels, every_n_steps=every,
        step_sizes=settings.step_sizes or tuple(learning_rate * factor for factor in STEP_SIZE_FACTORS)),
    "covariate_shift": lambda settings, images, labels, every, learning_rate: CovariateShiftProbe(
        images, labels, every_n_steps=every, learning_rate=settings.learning_rate),
    "kernel_norms": lambda settings, images, labels, every, learning_rate: KernelNorms(every_n_steps=every),
}


def probe_summary(tables: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """The per-trial figures of the probe tables given (`bnlab.config.probes.PROBE_METRICS`)."""
    summary = {}
    if "init_gradients" in tables:
        summary["init_gradient_growth"] = init_gradient_growth(tables["init_gradients"])
    if "landscape" in tables:
        frame = tables["landscape"]
        for column in ("loss_range", "gradient_predictiveness", "beta_smoothness"):
            summary[f"mean_{column}"] = _finite_mean(frame[column])
    if "covariate_shift" in tables:
        summary.update(mean_ics_l2=_finite_mean(tables["covariate_shift"]["l2"]),
                       mean_ics_cosine=_finite_mean(tables["covariate_shift"]["cosine"]))
    if "kernel_norms" in tables:
        summary.update(final_kernels(tables["kernel_norms"]))
    return summary


def init_gradient_growth(table: pd.DataFrame) -> float:
    """The factor by which the squared gradient norm of a kernel grows per layer toward the input.

    A least-squares line through log(squared_norm) against depth over the kernels between two hidden
    layers (depth 2 to L-1: the first kernel sees pixels, the last feeds the softmax, both on other
    scales); the factor is exp(-slope). Yang et al. 2019 (ICLR, "A mean field theory of BN") predict pi/(pi-1), about
    1.47, for wide ReLU layers with BN, and 1 without BN at He initialization. NaN with fewer than two
    such kernels (a network of under four kernels) or a zero gradient.
    """
    inner = table[(table["depth"] > 1) & (table["depth"] < table["depth"].max())]
    if len(inner) < 2 or not (inner["squared_norm"] > 0).all():
        return math.nan
    slope = np.polyfit(inner["depth"].to_numpy(float), np.log(inner["squared_norm"].to_numpy(float)), 1)[0]
    return float(np.exp(-slope))


def final_kernels(table: pd.DataFrame) -> dict[str, float]:
    """The mean norm and effective learning rate of the kernels feeding BN (all kernels when none does) at the
    last record."""
    last = table[table["step"] == table["step"].max()]
    chosen = last[last["normalized"].astype(bool)] if last["normalized"].astype(bool).any() else last
    return {"final_kernel_norm": _finite_mean(chosen["kernel_norm"]),
            "final_effective_learning_rate": _finite_mean(chosen["effective_learning_rate"])}


def _finite_mean(values: pd.Series) -> float:
    """The mean of the finite values (a diverged record is inf or NaN); NaN when none is finite."""
    finite = values.to_numpy(float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else math.nan
