"""Keras callbacks that record why BN helps, on a fixed probe batch, as training goes on.

`LandscapeProbe` records the smoothness of the loss landscape and `CovariateShiftProbe` the
internal covariate shift, as Santurkar et al. 2018 measure them (`bnlab.training.landscape`).
Both run between training steps, outside the compiled step, in training mode but stateless:
with them, training is bit-for-bit what it is without them (weights, moving statistics,
optimizer and seed states), and without them it is exactly as fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import pandas as pd

from bnlab.training.landscape import (
    COVARIATE_SHIFT_COLUMNS,
    LANDSCAPE_KEYS,
    check_learning_rate,
    check_step_sizes,
    covariate_shift,
    landscape_step,
)

# Around the learning rates bnlab trains with (0.01 Keras's SGD default to 1.0 in the lr_sweep
# study): Santurkar et al. 2018 (Fig. 4) move along the gradient over a range of step sizes
# around the training learning rate.
DEFAULT_STEP_SIZES = (0.01, 0.03, 0.1, 0.3, 1.0)


def _float(value) -> float:
    return float(value.numpy() if isinstance(value, keras.Variable) else keras.ops.convert_to_numpy(value))


class _ScheduledProbe(keras.callbacks.Callback):
    """Records rows at step 0 and whenever the optimizer's step count reaches a multiple of N."""

    columns: tuple[str, ...] = ()

    def __init__(self, images, labels, every_n_steps: int, loss):
        super().__init__()
        if not (isinstance(every_n_steps, int) and not isinstance(every_n_steps, bool) and every_n_steps > 0):
            raise ValueError(f"{type(self).__name__}: every_n_steps must be a positive integer; "
                             f"received {every_n_steps!r}.")
        self.images, self.labels = images, labels
        self.every_n_steps = every_n_steps
        self.loss = loss
        self.records: list[dict] = []

    def on_train_begin(self, logs=None):
        step = self._step()
        if not self.records:
            self._record(step)  # before any update (step 0 on a fresh optimizer)
        self._next_step = (step // self.every_n_steps + 1) * self.every_n_steps

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step >= self._next_step:  # with steps_per_execution > 1: the first batch end at or after it
            self._record(step)
            self._next_step = (step // self.every_n_steps + 1) * self.every_n_steps

    def as_frame(self) -> pd.DataFrame:
        """The records as a DataFrame, one row per record (see the class's `columns`)."""
        return pd.DataFrame(self.records, columns=list(self.columns))

    def _step(self) -> int:
        # `self.model` syncs the JAX trainer's state into the variables before we read them
        return int(self.model.optimizer.iterations.numpy())

    def _record(self, step: int) -> None:
        raise NotImplementedError


class LandscapeProbe(_ScheduledProbe):
    """Loss-landscape smoothness along the gradient on a fixed batch, every N steps (Santurkar et al. 2018).

    Each record is `bnlab.training.landscape.landscape_step` at the weights of that step: the
    loss, the gradient norm, the range of the loss along the gradient direction, the gradient
    predictiveness and the effective beta-smoothness (Santurkar et al. 2018, sec. 3.1, Fig. 4).

    Args:
        images: a fixed probe batch of inputs, preprocessed as for training.
        labels: their targets.
        every_n_steps: record when the optimizer's step count reaches a multiple of this
            (with steps_per_execution > 1, at the first batch end at or after it); also at
            the start of training.
        step_sizes: the step sizes along the gradient; the defaults span 0.01 to 1.
        loss: as for `bnlab.training.gradients.loss_and_gradients` (default: the compiled loss).

    Attributes:
        records: one dict per record; `as_frame()` returns them as a DataFrame with the columns
            `step`, `loss`, `gradient_norm`, `loss_range`, `gradient_predictiveness`,
            `beta_smoothness`.

    Raises:
        ValueError: for an invalid `every_n_steps` or `step_sizes`.

    Example:
        >>> probe = LandscapeProbe(x_train[:512], y_train[:512], every_n_steps=200)
        >>> model.fit(x_train, y_train, callbacks=[probe])
        >>> probe.as_frame().plot(x="step", y="beta_smoothness")
    """

    columns = ("step", *LANDSCAPE_KEYS)

    def __init__(self, images, labels, every_n_steps: int = 100,
                 step_sizes: Sequence[float] = DEFAULT_STEP_SIZES, loss=None):
        super().__init__(images, labels, every_n_steps, loss)
        self.step_sizes = check_step_sizes(step_sizes, "LandscapeProbe")

    def _record(self, step: int) -> None:
        values = landscape_step(self.model, self.images, self.labels, self.step_sizes, loss=self.loss)
        self.records.append({"step": step, **values})


class CovariateShiftProbe(_ScheduledProbe):
    """Internal covariate shift of each kernel layer on a fixed batch, every N steps (Santurkar et al. 2018).

    Each record is `bnlab.training.landscape.covariate_shift` at the weights of that step
    (Definition 2.1): per kernel layer of depth 2 or more, how much its loss gradient changes
    (l2 distance and cosine) when the layers before it take one plain gradient step.

    Args:
        images: a fixed probe batch of inputs, preprocessed as for training.
        labels: their targets.
        every_n_steps: record when the optimizer's step count reaches a multiple of this
            (with steps_per_execution > 1, at the first batch end at or after it); also at
            the start of training.
        learning_rate: the step size of the update of the earlier layers; None: the
            optimizer's learning rate at that step (a schedule is evaluated there).
        loss: as for `bnlab.training.gradients.loss_and_gradients` (default: the compiled loss).

    Attributes:
        records: one dict per (record, layer); `as_frame()` returns them as a DataFrame with
            the columns `step`, `layer`, `depth`, `l2`, `cosine`.

    Raises:
        ValueError: for an invalid `every_n_steps` or `learning_rate`.

    Example:
        >>> probe = CovariateShiftProbe(x_train[:512], y_train[:512], every_n_steps=200)
        >>> model.fit(x_train, y_train, callbacks=[probe])
        >>> probe.as_frame().pivot(index="step", columns="layer", values="cosine")
    """

    columns = ("step", *COVARIATE_SHIFT_COLUMNS)

    def __init__(self, images, labels, every_n_steps: int = 100, learning_rate: float | None = None, loss=None):
        super().__init__(images, labels, every_n_steps, loss)
        if learning_rate is not None:
            learning_rate = check_learning_rate(learning_rate, "CovariateShiftProbe")
        self.learning_rate = learning_rate

    def _record(self, step: int) -> None:
        learning_rate = self.learning_rate
        if learning_rate is None:
            learning_rate = _float(self.model.optimizer.learning_rate)  # a schedule is evaluated at this step
        table = covariate_shift(self.model, self.images, self.labels, learning_rate, loss=self.loss)
        self.records += [{"step": step, **row} for row in table.to_dict("records")]
