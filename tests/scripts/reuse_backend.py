"""Trains one trial on a fresh model and on a model reused from a trial of another seed and learning rate;
prints both trials' figures as one JSON line.

Run by tests/test_study_speed.py in this process's backend, or in a fresh process for another backend
(KERAS_BACKEND is read at import).
"""

import json

import keras

import bnlab
from bnlab.training import trial
from bnlab.training.compiled import CompiledModels

# noisy BN: the reused model must also start its noise's seed generator where a fresh one would
CUT = {"variants": ["bn_before_activation", "noisy_bn_before_activation"], "training.epochs": 2,
       "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 320},
       "evaluation": {"train_eval_examples": 100}, "training.steps_per_execution": 4}
FIGURES = ["step", "loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy"]


def figures(record) -> dict:
    return {"epochs": record.epochs[FIGURES].to_numpy().tolist(), "test_loss": record.summary["test_loss"],
            "predicted": record.test_predictions.predicted.tolist()}


def newest():
    """The model the last trial compiled or reused."""
    return next(reversed(trial.COMPILED.models.values()))


def collect() -> dict:
    fresh_config = bnlab.load_config("tiny", {**CUT, "training.reuse_compiled": False})
    other_lr = bnlab.load_config("tiny", {**CUT, "training.optimizer.learning_rate": 0.5})
    config = bnlab.load_config("tiny", CUT)
    splits = trial.load_splits(config)
    trial.COMPILED, kept = CompiledModels(), trial.COMPILED
    try:
        result = {"backend": keras.backend.backend()}
        for index, variant in enumerate(config.variants):
            fresh = trial.train_trial(fresh_config, fresh_config.variants[index], 1, splits)
            trial.train_trial(other_lr, other_lr.variants[index], 0, splits)  # compiles the model the next reuses
            compiled = newest()
            reused = trial.train_trial(config, variant, 1, splits)
            result[variant.label] = {"fresh": figures(fresh), "reused": figures(reused),
                                     "kept_models": len(trial.COMPILED.models), "same_model": compiled is newest()}
        return result
    finally:
        trial.COMPILED = kept


if __name__ == "__main__":
    print(json.dumps(collect()))
