"""Trains one step-mode trial with bnlab and the same network with plain Keras; prints both logs as JSON.

Run by tests/test_training_logs.py in a fresh process per backend (KERAS_BACKEND is read at import).
The plain-Keras fit records Keras's running means at every `steps_per_execution` steps of each
epoch; from them the mean over any span of steps follows by hand (sums of whole-batch figures),
independently of bnlab's evaluator.
"""

import json

import keras
import numpy as np

import bnlab
from bnlab.models.variants import get_variant
from bnlab.training import trial as runner

STEPS, EVERY, EXECUTION, BATCH, IMAGES = 48, 12, 4, 32, 512  # 16 steps an epoch: rows span epoch ends
CONFIG = {
    "name": "logs", "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": IMAGES},
    "variants": [{"name": "bn_before_activation", "overrides": {"hidden_units": [16, 12]}}],
    "seeds": 1,
    "training": {"steps": STEPS, "eval_every_steps": EVERY, "steps_per_execution": EXECUTION, "batch_size": BATCH,
                 "optimizer": {"name": "sgd", "learning_rate": 0.1},
                 "data_order": "keras"},  # the plain-Keras fit's order: this compares logs, not orders
    "targets": [0.2],
}


class RunningMeans(keras.callbacks.Callback):
    """Keras's running (loss, accuracy) means at each logged step of each epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append({})

    def on_train_batch_end(self, batch, logs=None):
        self.epochs[-1][batch + 1] = (float(logs["loss"]), float(logs["accuracy"]))
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) >= STEPS:
            self.model.stop_training = True


def plain_keras_means(config, variant, splits) -> list:
    keras.utils.set_random_seed(0)
    model = bnlab.build_model(variant.name, **variant.overrides)
    training = config.training
    model.compile(optimizer=runner._optimizer(training.optimizer), loss=training.loss, metrics=["accuracy"],
                  steps_per_execution=EXECUTION, jit_compile=training.jit_compile)
    means = RunningMeans()
    model.fit(get_variant(variant.name).preprocess(splits.x_train), splits.y_train, batch_size=BATCH,
              epochs=training.fit_epochs(IMAGES), callbacks=[means], verbose=0)
    per_epoch = IMAGES // BATCH

    def total(step):  # sum of the per-step figures over steps 1..step
        done = np.zeros(2)
        for index, logged in enumerate(means.epochs):
            taken = min(step - index * per_epoch, per_epoch)
            if taken <= 0:
                break
            done += taken * np.array(logged[taken])
        return done

    return [((total(step) - total(step - EVERY)) / EVERY).tolist() for step in range(EVERY, STEPS + 1, EVERY)]


def main() -> None:
    config = bnlab.load_config(CONFIG)
    variant = config.trial_variants[0]
    splits = runner.load_splits(config, None)
    record = runner.train_trial(config, variant, 0, splits)
    print(json.dumps({"bnlab": record.epochs[["loss", "accuracy"]].to_numpy().tolist(),
                      "plain_keras": plain_keras_means(config, variant, splits)}))


if __name__ == "__main__":
    main()
