"""Which part of bnlab's runner slows its training epoch? Interleaved runs of `fit` variants.

Every variant trains bn_before_activation with SGD (0.01, momentum 0.9) at batch size 32 on
all 60,000 MNIST training images in its own process, with bnlab's compile settings unless it
says otherwise. A variant's "training seconds" run from `on_epoch_begin` to the end of the
epoch's training steps (`on_test_begin` when fit validates, else `on_epoch_end`), the same
span `bnlab.training.trial` records as `train_seconds`; the first epoch is a warm-up and not shown.
Each epoch also reports the process's CPU seconds (fit variants): an epoch whose wall time
far exceeds them waited for cores that other processes held.

Usage:
    python benchmarks/epoch_parts.py --rounds 2 --epochs 3 bare val train_eval runner
    python benchmarks/epoch_parts.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "bare": {},
    "val": {"validation": True},
    "train_eval": {"train_eval": "tensor"},
    "train_eval_numpy": {"train_eval": "numpy"},
    "val_train_eval": {"validation": True, "train_eval": "tensor"},
    "runner": {"runner": True},
    "reference": {"steps_per_execution": 1, "jit_compile": "auto"},
    "spe_1875": {"steps_per_execution": 1875},
    "spe_125": {"steps_per_execution": 125},
    "no_xla": {"jit_compile": False},
    "threads_1_1": {"threads": [1, 1]},
    "threads_2_1": {"threads": [2, 1]},
    "threads_1_2": {"threads": [1, 2]},
    "tensor_input": {"input": "tensor"},
    "tfdata_input": {"input": "tf.data"},
    "no_onednn": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "intra_1": {"env": {"TF_NUM_INTRAOP_THREADS": "1"}},
    "runner_intra_1": {"runner": True, "env": {"TF_NUM_INTRAOP_THREADS": "1"}},
}


def measure(options: dict, epochs: int) -> dict:
    """Train in this process as `options` says; per-epoch training and evaluation seconds."""
    import keras

    if options.get("threads"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(options["threads"][0])
        tf.config.threading.set_inter_op_parallelism_threads(options["threads"][1])
    from bnlab.data.mnist import load_mnist
    from bnlab.data.splits import split_mnist
    from bnlab.models.builders import build_model
    from bnlab.models.variants import preprocess_input

    splits = split_mnist(load_mnist(), validation="test")
    x_train = preprocess_input("bn_before_activation", splits.x_train)
    x_test = preprocess_input("bn_before_activation", splits.x_test)
    if options.get("runner"):
        return _measure_runner(splits, epochs)
    keras.utils.set_random_seed(0)
    model = build_model("bn_before_activation")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=options.get("steps_per_execution", 64),
                  jit_compile=options.get("jit_compile", True))
    timer = _timer_class()(x_train, splits.y_train, options.get("train_eval"))
    fit_kwargs = {"x": x_train, "y": splits.y_train, "batch_size": 32}
    if options.get("input") in ("tensor", "tf.data"):
        import tensorflow as tf

        x, y = tf.constant(x_train), tf.constant(splits.y_train)
        fit_kwargs.update(x=x, y=y)
        if options["input"] == "tf.data":
            fit_kwargs = {"x": _reshuffled_dataset(x, y, 32)}
    if options.get("validation"):
        fit_kwargs.update(validation_data=(x_test, splits.y_test), validation_batch_size=1024)
    model.fit(**fit_kwargs, epochs=epochs + 1, verbose=0, callbacks=[timer])
    accuracy = model.evaluate(x_test, splits.y_test, batch_size=1024, verbose=0, return_dict=True)
    return {"train": timer.train[1:], "eval": timer.eval[1:], "accuracy": accuracy["accuracy"],
            "loss": timer.loss, "cpu": timer.cpu[1:], "threads": timer.threads}


def _reshuffled_dataset(x, y, batch_size):
    """A tf.data pipeline of index batches, reshuffled every epoch, gathering whole batches."""
    import tensorflow as tf

    count = int(x.shape[0])
    indices = tf.data.Dataset.range(count).shuffle(count, reshuffle_each_iteration=True)
    return indices.batch(batch_size).map(lambda i: (tf.gather(x, i), tf.gather(y, i))).prefetch(2)


def _measure_runner(splits, epochs):
    from bnlab.config import load_config
    from bnlab.training.trial import train_trial

    config = load_config({"name": "parts", "dataset": {"validation": "test"},
                          "variants": ["bn_before_activation"], "seeds": [0],
                          "training": {"epochs": epochs + 1, "batch_size": 32,
                                       "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}},
                          "targets": [0.98], "output_dir": "unused"})
    record = train_trial(config, config.variants[0], 0, splits)
    table = record.epochs
    return {"train": list(table["train_seconds"])[1:],
            "eval": list(table["val_seconds"] + table["train_eval_seconds"])[1:],
            "accuracy": record.summary["test_accuracy"], "loss": list(table["loss"])}


def _timer_class():
    """A callback timing each epoch's training (wall and process CPU seconds), then evaluating
    the training set as the runner does when asked; built late, once Keras has its backend."""
    import keras

    class Timer(keras.callbacks.Callback):
        def __init__(self, x_train, y_train, train_eval):
            super().__init__()
            self.train_eval = train_eval
            if train_eval == "tensor":
                x_train, y_train = keras.ops.convert_to_tensor(x_train), keras.ops.convert_to_tensor(y_train)
            self.x_train, self.y_train = x_train, y_train
            self.train, self.eval, self.loss, self.cpu, self.threads = [], [], [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
            self.trained = None

        def on_test_begin(self, logs=None):
            if self.trained is None:
                self.trained, self.cpu_trained = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            if self.trained is None:
                self.trained, self.cpu_trained = time.perf_counter(), time.process_time()
            trained = self.trained
            self.cpu.append(self.cpu_trained - self.cpu_started)
            if self.train_eval:
                self.model.evaluate(self.x_train, self.y_train, batch_size=1024, verbose=0)
            self.train.append(trained - self.started)
            self.eval.append(time.perf_counter() - trained)
            self.loss.append(float(logs["loss"]))
            self.threads.append(len(os.listdir("/proc/self/task")))

    return Timer


def run(names: list[str], rounds: int, epochs: int) -> dict:
    """Each variant once per round, in reverse order every other round; pooled epochs."""
    pooled = {name: {"train": [], "eval": [], "accuracy": []} for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            options = VARIANTS[name]
            env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", **options.get("env", {}))
            done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(options), "--epochs", str(epochs)],
                                  env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            for key in ("train", "eval"):
                pooled[name][key] += measured[key]
            pooled[name]["accuracy"].append(measured["accuracy"])
            print(f"  round {index + 1} {name}: train {[round(s, 3) for s in measured['train']]} "
                  f"cpu {[round(s, 3) for s in measured.get('cpu', [])]} threads {measured.get('threads')} "
                  f"eval {[round(s, 3) for s in measured['eval']]}", flush=True)
    return pooled


def _print(pooled: dict) -> None:
    first = statistics.median(next(iter(pooled.values()))["train"])
    print(f"{'variant':<20} {'train min':>9} {'median':>7} {'max':>6} {'x first':>7} {'eval med':>8} accuracy")
    for name, figures in pooled.items():
        train = figures["train"]
        evaluation = statistics.median(figures["eval"])
        print(f"{name:<20} {min(train):9.3f} {statistics.median(train):7.3f} {max(train):6.3f} "
              f"{statistics.median(train) / first:7.3f} {evaluation:8.3f} "
              f"{' '.join(f'{a:.4f}' for a in figures['accuracy'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker), args.epochs)))
        return
    if args.list or not args.variants:
        print("\n".join(f"{name}: {options}" for name, options in VARIANTS.items()))
        return
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choices: {', '.join(VARIANTS)}")
    _print(run(args.variants, args.rounds, args.epochs))


if __name__ == "__main__":
    main()
