"""The callback that evaluates a trial during fit: at every epoch end, or every N steps.

Used by `bnlab.training.trial.train_trial`; it records one row of the per-epoch table
(`bnlab.common.columns.EPOCH_COLUMNS`) per evaluation.
"""

from __future__ import annotations

import math
import time

import keras

from bnlab.common.columns import TRAIN_EVAL_EXAMPLES
from bnlab.training.inference import score


class Evaluator(keras.callbacks.Callback):
    """Evaluates at the end of every epoch, or every `every_steps` optimizer steps (step mode).

    Each evaluation times the training since the last one, scores the validation set, and
    re-evaluates the training set in inference mode: Keras's own `accuracy` is a running
    average in training mode, where BN uses batch statistics (Ioffe & Szegedy 2015, sec. 3.1),
    so only the inference-mode figures compare with the validation ones. Every evaluation but
    the last re-evaluates the training images `train_subset` indexes (None: all of them;
    `evaluation.train_eval_examples`), the last the whole training set, so the final figures
    (the overfitting gap) are exact. Both passes share one compiled predict step
    (`bnlab.training.inference`).

    A non-finite training loss stops the fit at the next batch end Keras reports (every
    `steps_per_execution` steps), not at the epoch's end, and the diverged evaluation is
    still recorded: the row of the epoch (or, in step mode, of the step) where it happened.

    The row's `loss` and `accuracy` are the training-mode means over the steps since the
    previous evaluation (in epoch mode: the epoch). `fit`'s metrics are running means over the
    epoch, so after each evaluation in step mode they are reset, and `fit`'s own reset at each
    epoch start is undone, so that a row spanning an epoch boundary still averages every step
    since the previous evaluation. (The inference passes use `predict_on_batch`, which leaves the
    metrics alone; Keras's `evaluate` would overwrite them.)
    """

    def __init__(self, data, eval_batch_size, on_row, every_steps=None, total_steps=None, scorer=None,
                 train_subset=None):
        super().__init__()
        self.scorer = scorer  # a ModeScorer (bnlab.training.eval_modes): validation under other BN statistics
        self.x_train, self.y_train, self.x_val, self.y_val = data
        # the training images re-evaluated before the last evaluation (None: all; see the class docstring)
        self.subset = (self.x_train, self.y_train) if train_subset is None else (
            self.x_train[train_subset], self.y_train[train_subset])
        self.eval_batch_size = eval_batch_size
        self.on_row = on_row
        self.every_steps, self.total_steps = every_steps, total_steps
        self.rows: list[dict] = []
        self.carried: list | None = None  # step mode: the metric state at the end of the last epoch

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()
        self.next_step = self.every_steps

    def on_epoch_begin(self, epoch, logs=None):
        if self.every_steps is None:
            self.started = time.perf_counter()
        elif self.carried is not None:  # fit has just reset the metrics: carry the running means on
            for variable, value in zip(self.model.metrics_variables, self.carried):
                variable.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if self.every_steps is None:
            self._evaluate(logs, self._step())
        else:
            self.carried = [keras.ops.convert_to_numpy(v.value) for v in self.model.metrics_variables]

    def on_train_batch_end(self, batch, logs=None):
        if not math.isfinite(logs["loss"]):  # diverged: no more steps on NaN weights
            self.model.stop_training = True
            if self.every_steps is not None:  # epoch mode records the row at the epoch's end
                self._evaluate(logs, self._step())
            return
        if self.every_steps is None:
            return
        step = self._step()
        if step >= self.next_step:
            self._evaluate(logs, step)
            self.model.reset_metrics()  # the next row averages the steps after this evaluation
            self.next_step += self.every_steps
        if step >= self.total_steps:
            self.model.stop_training = True

    def _last(self, step) -> bool:
        """Whether this is the trial's last evaluation (in epoch mode, of its last epoch)."""
        if self.every_steps is not None:
            return step >= self.total_steps
        return len(self.rows) + 1 >= self.params["epochs"]

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _evaluate(self, logs, step) -> None:
        trained = time.perf_counter()
        val = self._score(self.x_val, self.y_val)
        validated = time.perf_counter()
        x_train, y_train = (self.x_train, self.y_train) if self._last(step) else self.subset
        train_eval = self._score(x_train, y_train)
        modes_started = time.perf_counter()
        modes = self.scorer.score(self.model, self.x_val, self.y_val) if self.scorer is not None else {}
        row = {
            "epoch": len(self.rows) + 1,
            "step": step,
            "train_seconds": trained - self.started,
            "val_seconds": validated - trained,
            "train_eval_seconds": modes_started - validated,
            "loss": logs["loss"],
            "accuracy": logs["accuracy"],
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "train_eval_loss": train_eval["loss"],
            "train_eval_accuracy": train_eval["accuracy"],
            TRAIN_EVAL_EXAMPLES: len(y_train),
            **modes,
            **({"modes_seconds": time.perf_counter() - modes_started} if modes else {}),
        }
        self.rows.append(row)
        # callbacks after this one (TensorBoard) see the validation figures as fit would give them
        logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        self.on_row(row)
        if not math.isfinite(row["loss"]):
            self.model.stop_training = True
        self.started = time.perf_counter()

    def _score(self, x, y) -> dict:
        return score(self.model, x, y, self.eval_batch_size)
