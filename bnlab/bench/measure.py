"""One setting trained and timed in this process: the body of each measuring process of the benchmark.

`bnlab.bench.run` starts one fresh Python process per setting, with KERAS_BACKEND set, as
`python -m bnlab.bench.measure PAYLOAD`; it prints its figures as one line of JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from bnlab.common.startup import import_keras_quietly

import_keras_quietly()  # a measuring process starts Keras as `bnlab run` does: no C++ start-up lines
import keras  # noqa: E402
import numpy as np  # noqa: E402

from bnlab.bench.settings import (  # noqa: E402
    BATCH_SIZE,
    FULL_IMAGES,
    OPTIMIZER,
    VARIANT,
    BenchError,
    Setting,
)
from bnlab.config import load_config  # noqa: E402


def measure_setting(setting: Setting, epochs: int, images: int) -> dict:
    """Train with one setting in this process and time its epochs.

    Keras must already run on `setting.backend` (`bnlab.bench.run` sets KERAS_BACKEND for the
    measuring process).

    Returns:
        `epoch_seconds` (the timed epochs), `warmup_seconds` (the first epoch),
        `cpu_seconds` (fit kinds only: this process's CPU time in each timed epoch; an
        epoch whose wall time far exceeds it waited for cores other processes held),
        `eval_seconds` and `eval_warmup_seconds` (runner only: its validation and
        training-set evaluation passes per epoch), `accuracy` (test set, after training),
        `peak_memory_mib` (this process's maximum resident size), `load_average` (the
        machine's higher 1-minute load average of the start and the end) and `backend_version`.
    """
    if keras.backend.backend() != setting.backend:
        raise BenchError(f"{setting.name}: expected Keras on {setting.backend}, "
                         f"received {keras.backend.backend()}; set KERAS_BACKEND before importing Keras.")
    from bnlab.common.environment import environment_record
    from bnlab.data.mnist import load_mnist
    from bnlab.data.splits import split_mnist

    load_at_start = os.getloadavg()[0]
    splits = split_mnist(load_mnist(), validation="test", train_subset=None if images >= FULL_IMAGES else images)
    measure = _measure_runner if setting.kind == "runner" else _measure_fit
    measured = measure(setting, splits, epochs + 1)
    # the first epoch also traces and compiles: reported apart, as `warmup_seconds`
    measured["warmup_seconds"], *measured["epoch_seconds"] = measured["epoch_seconds"]
    measured["eval_warmup_seconds"], *measured["eval_seconds"] = measured.get("eval_seconds") or [None]
    measured["cpu_seconds"] = measured.get("cpu_seconds", [])[1:]
    measured["load_average"] = max(load_at_start, os.getloadavg()[0])
    measured["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured["backend_version"] = environment_record()["backend_version"]
    measured["environment"] = {name: os.environ.get(name) for name, _ in setting.environment}
    return measured


def _measure_fit(setting: Setting, splits, epochs: int) -> dict:
    """A bare `model.fit` on numpy arrays, timed by a callback with no per-batch work."""
    from bnlab.models.builders import build_model
    from bnlab.models.variants import preprocess_input
    from bnlab.training.fused import fit

    keras.utils.set_random_seed(0)
    model = build_model(VARIANT)
    settings = setting.execution_settings()
    eval_batch_size = settings.pop("eval_batch_size")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  **({} if setting.kind == "reference" else settings))  # a tutorial passes none
    timer = _EpochTimer()
    inputs = _inputs(setting, preprocess_input(VARIANT, splits.x_train), splits.y_train)
    if setting.kind == "fit" and setting.input == "numpy":  # bnlab's fit: fused steps unless turned off
        fit(model, inputs["x"], inputs["y"], batch_size=BATCH_SIZE, epochs=epochs, callbacks=[timer],
            fused=setting.fused_steps)
    else:
        model.fit(**inputs, epochs=epochs, verbose=0, callbacks=[timer])
    test = model.evaluate(preprocess_input(VARIANT, splits.x_test), splits.y_test,
                          batch_size=eval_batch_size, verbose=0, return_dict=True)
    return {"epoch_seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds, "accuracy": test["accuracy"]}


def _inputs(setting: Setting, x: np.ndarray, y: np.ndarray) -> dict:
    if setting.input == "numpy":
        return {"x": x, "y": y, "batch_size": BATCH_SIZE}
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x), seed=0)
    return {"x": data.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)}


def _measure_runner(setting: Setting, splits, epochs: int) -> dict:
    """bnlab's own `train_trial`, timed by its own per-epoch records."""
    from bnlab.training.trial import train_trial

    training = {"epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": OPTIMIZER}
    training.update(setting.overrides())
    config = load_config({"name": "bench", "dataset": {"validation": "test"}, "variants": [VARIANT],
                          "seeds": [0], "training": training, "targets": [0.98], "output_dir": "unused"})
    record = train_trial(config, config.variants[0], 0, splits)
    epochs_table = record.epochs
    return {"epoch_seconds": list(epochs_table["train_seconds"]),
            "eval_seconds": list(epochs_table["val_seconds"] + epochs_table["train_eval_seconds"]),
            "accuracy": record.summary["test_accuracy"]}


class _EpochTimer(keras.callbacks.Callback):
    """Wall and process CPU time of each epoch of a `fit` without validation; no per-batch work."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.cpu_started = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)
        self.cpu_seconds.append(time.process_time() - self.cpu_started)


def main(payload: str) -> None:
    """The measuring process: measure the setting of the JSON `payload` and print its figures as JSON."""
    request = json.loads(payload)
    setting = request["setting"]
    setting["environment"] = tuple(map(tuple, setting["environment"]))
    measured = measure_setting(Setting(**setting), request["epochs"], request["images"])
    print(json.dumps(measured))


if __name__ == "__main__":
    main(sys.argv[1])
