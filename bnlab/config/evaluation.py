"""The optional `evaluation` section: how validation is scored besides BN's moving averages.

Keras evaluates a BN network with the moving averages of the batch statistics (momentum 0.99,
biased batch variance). Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm", sec. 3 and 4)
compare that with population statistics recomputed after training (PreciseBN) and with the
statistics of the evaluated batch itself; each mode named here adds its own validation columns
(`bnlab.common.columns.mode_column`), and `bnlab.report` states the gap between the modes.
"""

from __future__ import annotations

import dataclasses

from bnlab.common.columns import EVALUATION_MODES
from bnlab.config.problems import Problems, get_section, get_value, positive_int

_KEYS = ("modes", "precise_bn_examples", "unbiased", "statistics_batch_size", "train_eval_examples")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation modes besides the moving averages, and the per-layer discrepancy table.

    Attributes:
        modes: evaluation modes of `EVALUATION_MODES` ("precise_bn", "batch_statistics"); the
            moving averages are always evaluated.
        precise_bn_examples: training images that PreciseBN (and the discrepancy table at the end
            of each trial) take the population statistics over: the first N of the training set.
        unbiased: PreciseBN's variance: the population variance with Bessel's correction (True),
            or the mean of per-batch biased variances, which Keras's moving average estimates.
        statistics_batch_size: batch_statistics mode: the batch whose statistics normalize each
            validation batch (None: the training batch size).
        train_eval_examples: training images re-evaluated in inference mode at every evaluation
            but a trial's last, drawn at random with the trial's seed (None: all of them). The
            last evaluation re-evaluates the whole training set, so final figures are exact.
    """

    modes: tuple[str, ...] = ()  # none: validation with the moving averages only, as Keras evaluates
    # Wu & Johnson 2021, sec. 3.1: PreciseBN's estimate settles with about 10^4 examples; a
    # fifth of a 55,000-image epoch keeps its cost per evaluation small.
    precise_bn_examples: int = 10_000
    unbiased: bool = True  # the population's own variance, what inference ideally divides by
    statistics_batch_size: int | None = None  # the batch the network trained with
    # The per-epoch curves of the training set in inference mode, on 10,000 images: a sampling
    # error of sqrt(p (1 - p) / 10,000), at most 0.005 and 0.001 at 99% accuracy, for a fifth of
    # the cost of all 55,000 (docs/speed.md measures it).
    train_eval_examples: int | None = 10_000

    def to_dict(self) -> dict:
        """Plain data that `parse_evaluation` accepts back."""
        return {**dataclasses.asdict(self), "modes": list(self.modes)}


def parse_evaluation(data: dict, problems: Problems) -> EvaluationConfig:
    """The `evaluation` section (all defaults when it is absent); problems recorded, defaults kept."""
    section = get_section(data, "evaluation", _KEYS, problems, required=False) or {}
    default, key = EvaluationConfig(), "evaluation"
    modes = get_value(section, "modes", key, problems,
                      lambda v: isinstance(v, list) and all(m in EVALUATION_MODES for m in v) and len(set(v)) == len(v),
                      f"a list of distinct evaluation modes among {', '.join(EVALUATION_MODES)} (the moving "
                      "averages are always evaluated)", list(default.modes))
    examples = get_value(section, "precise_bn_examples", key, problems, positive_int,
                         "a positive integer: training images the population statistics are taken over",
                         default.precise_bn_examples)
    unbiased = get_value(section, "unbiased", key, problems, lambda v: isinstance(v, bool),
                         "true (the population variance, Bessel-corrected) or false (the mean of per-batch "
                         "biased variances, as Keras's moving average)", default.unbiased)
    batch = get_value(section, "statistics_batch_size", key, problems, lambda v: v is None or positive_int(v),
                      "null (the training batch size) or a positive integer", default.statistics_batch_size)
    train_eval = get_value(section, "train_eval_examples", key, problems, lambda v: v is None or positive_int(v),
                           "null (the whole training set at every evaluation) or a positive integer: training "
                           "images re-evaluated at every evaluation but the last", default.train_eval_examples)
    return EvaluationConfig(tuple(modes or ()), examples, unbiased, batch, train_eval)
