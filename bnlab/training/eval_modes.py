"""Validation under BN's other statistics (Wu & Johnson 2021, sec. 3 and 4), beside Keras's moving averages.

- "precise_bn": the population statistics of the training images, recomputed layer by layer with the
  weights frozen (`bnlab.models.population.precise_bn`), then the usual inference-mode evaluation.
- "batch_statistics": each validation batch normalized with its own statistics (the network in
  training mode, at a given batch size), as during training.

Both leave the model as they found it: every non-trainable variable (moving statistics, batch
renorm's step count) is restored afterwards, so training continues exactly as without them.
"""

from __future__ import annotations

import keras
import numpy as np

from bnlab.common.columns import mode_column
from bnlab.config.evaluation import EvaluationConfig
from bnlab.models.population import batch_norm_layer_names, precise_bn
from bnlab.training.inference import score, scores


class ModeScorer:
    """Scores validation data under each configured evaluation mode.

    Args:
        evaluation: the config's `evaluation` section.
        x_statistics: the training images PreciseBN takes the population statistics over.
        training_batch_size: the batch of batch_statistics mode when the config names none.
        eval_batch_size: the batch of the inference-mode evaluations.
    """

    def __init__(self, evaluation: EvaluationConfig, x_statistics, training_batch_size: int, eval_batch_size: int):
        self.evaluation = evaluation
        self.x_statistics = x_statistics[: evaluation.precise_bn_examples]
        self.statistics_batch_size = evaluation.statistics_batch_size or training_batch_size
        self.eval_batch_size = eval_batch_size

    def score(self, model: keras.Model, x, y) -> dict[str, float]:
        """{mode_column("val_loss", mode): ..., mode_column("val_accuracy", mode): ...} for each mode."""
        row = {}
        for mode in self.evaluation.modes:
            scores = self._precise(model, x, y) if mode == "precise_bn" else self._batch(model, x, y)
            row.update({mode_column(f"val_{name}", mode): value for name, value in scores.items()})
        return row

    def _precise(self, model, x, y) -> dict[str, float]:
        with restored(model):
            if batch_norm_layer_names(model):  # nested BN layers: precise_bn's own clear error
                precise_bn(model, self.x_statistics, batch_size=self.eval_batch_size,
                           unbiased=self.evaluation.unbiased)
            return score(model, x, y, self.eval_batch_size)

    def _batch(self, model, x, y) -> dict[str, float]:
        with restored(model):
            return score_with_batch_statistics(model, x, y, self.statistics_batch_size)


def score_with_batch_statistics(model: keras.Model, x, y, batch_size: int) -> dict[str, float]:
    """Mean cross-entropy and accuracy with every batch of `batch_size` normalized by its own statistics.

    The model runs in training mode, so its moving statistics change: call it inside `restored`.
    """
    probabilities = [keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=True))
                     for start in range(0, len(y), batch_size)]
    return scores(np.concatenate(probabilities), y)


class restored:  # noqa: N801 (used as a context manager, named like one)
    """Context manager: the model's non-trainable variables are put back as they were on exit."""

    def __init__(self, model: keras.Model):
        self.model = model

    def __enter__(self):
        self.saved = [keras.ops.convert_to_numpy(variable) for variable in self.model.non_trainable_variables]
        return self.model

    def __exit__(self, *exc_info):
        for variable, value in zip(self.model.non_trainable_variables, self.saved):
            variable.assign(value)
