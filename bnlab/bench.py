"""Times bnlab's training epoch against plain Keras code and the machine's matmul floor.

Every setting trains `bn_before_activation` with SGD at batch size 32 on the MNIST
training images, in its own Python process (Keras picks its backend when first imported,
and each process's peak memory is its own). The first epoch (graph building) is a warm-up;
the next `epochs` are timed. The floor is the time the Dense layers' matrix products of one
epoch take at the float32 rate this machine reaches for their shapes.

Example:
    >>> result = run_benchmark("benchmarks/results", epochs=3)
    >>> result.table[["setting", "seconds_median", "ratio_to_reference"]]
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from bnlab.config import BACKENDS, TrainingConfig, load_config

VARIANT = "bn_before_activation"
BATCH_SIZE = 32  # the placement study's batch size
OPTIMIZER = {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}  # the placement study's
DENSE_SHAPES = ((784, 300), (300, 100), (100, 10))  # the MLP's Dense kernels (inputs, units)
FULL_IMAGES = 60000  # all MNIST training images; the test set validates and scores
QUICK_IMAGES = 1024  # --quick: a slice that exercises every code path in seconds
COLUMNS = (
    "setting", "backend", "backend_version", "kind", "steps_per_execution", "jit_compile",
    "eval_batch_size", "input", "environment", "images", "epochs_timed", "warmup_seconds",
    "seconds_min", "seconds_median", "seconds_max", "cpu_seconds_median", "ratio_to_reference",
    "ratio_to_floor", "accuracy", "peak_memory_mib", "load_average", "note",
)


class BenchError(RuntimeError):
    """A benchmark setting could not run."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of training the benchmark model.

    Attributes:
        name: the table's row label.
        backend: the Keras backend its process runs on.
        kind: "reference" (Keras defaults), "fit" (a bare `fit` with bnlab's compile
            settings) or "runner" (`bnlab.runner.train_trial`).
        steps_per_execution, jit_compile, eval_batch_size: None keeps the kind's default
            (Keras's for the reference, bnlab's `TrainingConfig` for the others).
        input: "numpy" (arrays, as bnlab feeds them) or "tf.data" (a pre-built, cached and
            shuffled `tf.data.Dataset`: another data order, so only for `--explore`).
        environment: (name, value) pairs added to the worker process's environment, e.g.
            TensorFlow's thread pool sizes, which must be set before TensorFlow starts.
    """

    name: str
    backend: str
    kind: str
    steps_per_execution: int | None = None
    jit_compile: bool | None = None
    eval_batch_size: int | None = None
    input: str = "numpy"
    environment: tuple[tuple[str, str], ...] = ()

    def execution_settings(self) -> dict:
        """steps_per_execution, jit_compile and eval_batch_size as this setting runs them."""
        keras_defaults = {"steps_per_execution": 1, "jit_compile": "auto", "eval_batch_size": 32}
        defaults = keras_defaults if self.kind == "reference" else {
            name: getattr(TrainingConfig, name) for name in keras_defaults}
        chosen = {name: default if getattr(self, name) is None else getattr(self, name)
                  for name, default in defaults.items()}
        if self.backend == "torch" and self.kind != "reference":  # as bnlab.runner.train_trial
            chosen.update(steps_per_execution=1, jit_compile=False)
        return chosen

    def overrides(self) -> dict:
        """The execution settings this setting changes from its kind's default."""
        return {name: getattr(self, name) for name in _EXECUTION if getattr(self, name) is not None}


_EXECUTION = ("steps_per_execution", "jit_compile", "eval_batch_size")
REFERENCE = "reference (Keras tutorial)"
BARE_FIT = "bnlab settings, bare fit"
RUNNER_AS_REFERENCE = "bnlab runner, Keras default settings [tensorflow]"


_ONE_THREAD = (("TF_NUM_INTRAOP_THREADS", "1"),)
# Extra settings of `--explore`: could anything else make the TensorFlow epoch faster?
EXPLORE = (
    Setting("bnlab fit, jit_compile off", "tensorflow", "fit", jit_compile=False),
    Setting("bnlab fit, steps_per_execution 1", "tensorflow", "fit", steps_per_execution=1),
    Setting("bnlab fit, steps_per_execution 256", "tensorflow", "fit", steps_per_execution=256),
    Setting("bnlab fit, tf.data input", "tensorflow", "fit", input="tf.data"),
    # one intra-op thread: XLA's per-step matmuls are too small to share between two cores,
    # and the second core is left to tf.data and Python
    Setting("bnlab fit, TensorFlow intra-op threads 1", "tensorflow", "fit", environment=_ONE_THREAD),
    Setting("bnlab runner, TensorFlow intra-op threads 1", "tensorflow", "runner", environment=_ONE_THREAD),
)


@dataclasses.dataclass
class BenchResult:
    """What `run_benchmark` measured and where it wrote it."""

    table: pd.DataFrame  # one row per setting, `COLUMNS`
    floor: dict  # the floor's formula, FLOPs, matmul rate and seconds
    checks: dict  # the targets: measured value and whether it holds
    paths: list[Path]


def installed_backends() -> list[str]:
    """The Keras backends whose package is importable here, in `BACKENDS` order."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def default_settings(backends: list[str]) -> list[Setting]:
    """The reference, bnlab's bare fit and bnlab's runner on every given backend."""
    # The runner with Keras's default execution settings estimates the placement study's
    # time with reference settings (its epochs are this run's epochs, evaluation included).
    settings = [Setting(REFERENCE, "tensorflow", "reference"), Setting(BARE_FIT, "tensorflow", "fit"),
                Setting(RUNNER_AS_REFERENCE, "tensorflow", "runner", 1, False, 32)]
    return settings + [Setting(f"bnlab runner [{name}]", name, "runner") for name in backends]


def run_benchmark(
    out_dir: str | Path = "benchmarks/results",
    *,
    epochs: int = 3,
    quick: bool = False,
    backends: list[str] | None = None,
    explore: bool = False,
    rounds: int = 1,
) -> BenchResult:
    """Time every setting in its own process, compute the floor and write CSV and JSON.

    Args:
        out_dir: folder for `bench_epoch.csv` and `bench_epoch.json` (`*_quick.*` with `quick`).
        epochs: timed epochs per setting, after one warm-up epoch.
        quick: train on the first 1,024 images only (for tests; times mean little).
        backends: backends for the runner rows; default: every installed one.
        explore: add the `EXPLORE` settings.
        rounds: run every setting this many times, in reverse order every other round,
            and pool the timed epochs (a shared machine's slow spells then hit all alike).

    Returns:
        The `BenchResult`.

    Raises:
        BenchError: a requested backend is not installed, or `epochs` or `rounds` is not positive.
    """
    backends = _check_backends(backends)
    for name, value in (("epochs", epochs), ("rounds", rounds)):
        if value < 1:
            raise BenchError(f"{name}: expected a positive integer, received {value}.")
    images = QUICK_IMAGES if quick else FULL_IMAGES
    settings = default_settings(backends) + (list(EXPLORE) if explore else [])
    rows = _run_rounds(settings, epochs, images, rounds)
    floor = measure_floor(images, repeats=3 if quick else 20)
    table = _table(settings, rows, floor, images, epochs * rounds)
    checks = _checks(table, floor)
    measured = {setting.name: row for setting, row in zip(settings, rows)}
    paths = _write(Path(out_dir), "bench_epoch_quick" if quick else "bench_epoch",
                   table, {"floor": floor, "checks": checks, "measured": measured})
    return BenchResult(table, floor, checks, paths)


def _check_backends(backends):
    installed = installed_backends()
    if backends is None:
        return installed
    missing = [name for name in backends if name not in installed]
    if missing:
        raise BenchError(f"backends: expected installed Keras backends ({', '.join(installed)}), "
                         f"received {', '.join(missing)}; install with pip install 'bnlab[NAME]'.")
    return list(backends)


def _run_rounds(settings: list[Setting], epochs: int, images: int, rounds: int) -> list[dict]:
    runs: dict[Setting, list[dict]] = {setting: [] for setting in settings}
    for index in range(rounds):
        for setting in settings if index % 2 == 0 else settings[::-1]:
            runs[setting].append(_run_worker(setting, epochs, images))
    return [_pool(runs[setting]) for setting in settings]


def _pool(measured: list[dict]) -> dict:
    """One setting's runs as one: their timed epochs together, the median warm-up."""
    failed = [run for run in measured if "error" in run]
    if failed:
        return failed[0]
    pooled = dict(measured[0], peak_memory_mib=max(run["peak_memory_mib"] for run in measured))
    for key in ("epoch_seconds", "eval_seconds", "cpu_seconds"):
        pooled[key] = [seconds for run in measured for seconds in run.get(key, [])]
    pooled["load_average"] = max((run.get("load_average", np.nan) for run in measured), default=np.nan)
    for key in ("warmup_seconds", "eval_warmup_seconds"):
        if pooled[key] is not None:
            pooled[key] = statistics.median(run[key] for run in measured)
    return pooled


def _run_worker(setting: Setting, epochs: int, images: int) -> dict:
    """Run `measure_setting` in a fresh Python process on the setting's backend."""
    env = dict(os.environ, KERAS_BACKEND=setting.backend, **dict(setting.environment))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("JAX_PLATFORMS", "cpu")  # no search for accelerators this machine lacks
    payload = json.dumps({"setting": dataclasses.asdict(setting), "epochs": epochs, "images": images})
    done = subprocess.run([sys.executable, "-m", "bnlab.bench", payload],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"failed (exit {done.returncode}): {reason}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_setting(setting: Setting, epochs: int, images: int) -> dict:
    """Train with one setting in this process and time its epochs.

    Keras must already run on `setting.backend` (the worker process sets KERAS_BACKEND).

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
    from bnlab import environment
    from bnlab.data import load_mnist, split_mnist

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
    measured["backend_version"] = environment.describe()["backend_version"]
    measured["environment"] = {name: os.environ.get(name) for name, _ in setting.environment}
    return measured


def _measure_fit(setting: Setting, splits, epochs: int) -> dict:
    """A bare `model.fit` on numpy arrays, timed by a callback with no per-batch work."""
    from bnlab.models import build_model
    from bnlab.variants import preprocess_input

    keras.utils.set_random_seed(0)
    model = build_model(VARIANT)
    settings = setting.execution_settings()
    eval_batch_size = settings.pop("eval_batch_size")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  **({} if setting.kind == "reference" else settings))  # a tutorial passes none
    timer = _EpochTimer()
    model.fit(**_inputs(setting, preprocess_input(VARIANT, splits.x_train), splits.y_train),
              epochs=epochs, verbose=0, callbacks=[timer])
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
    from bnlab.runner import train_trial

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


def measure_floor(images: int, *, batch_size: int = BATCH_SIZE, repeats: int = 20) -> dict:
    """The seconds an epoch's Dense-layer matrix products take at this machine's float32 rate.

    Per step and Dense kernel (n_in, n_out): the forward product x @ W, the kernel gradient
    x.T @ dy and, except for the first layer (whose input, the images, needs no gradient),
    the input gradient dy @ W.T; each is 2 x batch x n_in x n_out FLOPs. So an epoch is
    (3 x 2 x kernel weights - 2 x 784 x 300) x images FLOPs, a little under the usual
    3 x 2 x weights x images. Each product is timed with numpy (best of `repeats` loops) at
    its own shape; biases, BN, activations, the loss and the optimizer are left out.

    Returns:
        `formula`, `flops`, `seconds` (the floor), `gflops_per_second` and `products`
        (shape and seconds of each).
    """
    rng = np.random.default_rng(0)
    products = []
    for index, (n_in, n_out) in enumerate(DENSE_SHAPES):
        shapes = [((batch_size, n_in), (n_in, n_out)), ((n_in, batch_size), (batch_size, n_out))]
        if index > 0:
            shapes.append(((batch_size, n_out), (n_out, n_in)))
        for left, right in shapes:
            a = rng.standard_normal(left, dtype=np.float32)
            b = rng.standard_normal(right, dtype=np.float32)
            seconds = _best_matmul_time(a, b, repeats)
            products.append({"shape": f"{left} x {right}", "flops": 2 * left[0] * left[1] * right[1],
                             "seconds": seconds})
    steps = -(-images // batch_size)
    step_seconds = sum(p["seconds"] for p in products)
    weights = sum(n_in * n_out for n_in, n_out in DENSE_SHAPES)
    first = DENSE_SHAPES[0][0] * DENSE_SHAPES[0][1]
    flops = steps * sum(p["flops"] for p in products)
    return {"formula": f"(3 x 2 x {weights} kernel weights - 2 x {first}) x {steps * batch_size} images",
            "flops": flops, "seconds": steps * step_seconds,
            "gflops_per_second": flops / (steps * step_seconds) / 1e9, "products": products}


def _best_matmul_time(a: np.ndarray, b: np.ndarray, repeats: int, loops: int = 200) -> float:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def _table(settings, rows, floor, images, epochs) -> pd.DataFrame:
    records = []
    for setting, row in zip(settings, rows):
        base = {"setting": setting.name, "backend": setting.backend, "kind": setting.kind,
                "backend_version": row.get("backend_version"), **setting.execution_settings(),
                "input": setting.input, "environment": " ".join(f"{k}={v}" for k, v in setting.environment),
                "images": images, "epochs_timed": epochs}
        cpu = row.get("cpu_seconds")
        records.append({**base, **_spread(row.get("epoch_seconds", [])), "accuracy": row.get("accuracy"),
                        "cpu_seconds_median": statistics.median(cpu) if cpu else None,
                        "warmup_seconds": row.get("warmup_seconds"), "load_average": row.get("load_average"),
                        "peak_memory_mib": row.get("peak_memory_mib"), "note": row.get("error", "")})
        if row.get("eval_seconds"):
            records.append({**base, "setting": f"{setting.name}: evaluation passes", "kind": "runner_eval",
                            **_spread(row["eval_seconds"]), "warmup_seconds": row["eval_warmup_seconds"],
                            "note": "validation + inference-mode training-set pass per epoch"})
    records.append({"setting": "floor (Dense matmuls at this machine's rate)", "backend": "numpy",
                    "kind": "floor", "images": images, **_spread([floor["seconds"]]),
                    "note": floor["formula"]})
    table = pd.DataFrame(records).reindex(columns=COLUMNS)
    trained = table["kind"].isin(["reference", "fit", "runner", "floor"])
    reference = table.loc[table["kind"] == "reference", "seconds_median"].iloc[0]
    table.loc[trained, "ratio_to_reference"] = table["seconds_median"] / reference
    table.loc[trained, "ratio_to_floor"] = table["seconds_median"] / floor["seconds"]
    return table


def _spread(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    return {"seconds_min": min(seconds), "seconds_median": statistics.median(seconds),
            "seconds_max": max(seconds)}


def _checks(table: pd.DataFrame, floor: dict) -> dict:
    """The issue's targets, from the medians of this one run (NaN where a row is missing)."""
    rows = table.set_index("setting")
    median = rows["seconds_median"]
    runners = median[rows["kind"] == "runner"].drop(RUNNER_AS_REFERENCE, errors="ignore").dropna()
    default = median.get("bnlab runner [tensorflow]", np.nan)
    study = {name: _placement_seconds(rows, name) for name in ("bnlab runner [tensorflow]", RUNNER_AS_REFERENCE)}
    figures = {
        "default_speedup_over_reference": (median.get(REFERENCE, np.nan) / default, ">=", 2.5),
        "fastest_backend_over_floor": (runners.min() / floor["seconds"] if len(runners) else np.nan, "<=", 2.0),
        "runner_overhead_over_bare_fit": (default / median.get(BARE_FIT, np.nan) - 1, "<=", 0.05),
        "placement_time_over_reference_settings": (
            study["bnlab runner [tensorflow]"] / study[RUNNER_AS_REFERENCE], "<=", 0.5),
    }
    return {name: {"value": None if np.isnan(value) else float(value), "target": f"{sign} {limit}",
                   "holds": bool(value >= limit if sign == ">=" else value <= limit)}
            for name, (value, sign, limit) in figures.items()}


def _placement_seconds(rows: pd.DataFrame, name: str, epochs: int = 15) -> float:
    """One placement trial's time: a first epoch, then `epochs - 1` median ones, each with
    its training and its evaluation passes (model building and the test pass are alike)."""
    evaluation = f"{name}: evaluation passes"
    if name not in rows.index or evaluation not in rows.index:
        return np.nan
    first = rows.loc[name, "warmup_seconds"] + rows.loc[evaluation, "warmup_seconds"]
    return first + (epochs - 1) * (rows.loc[name, "seconds_median"] + rows.loc[evaluation, "seconds_median"])


def bench_table(result: BenchResult):
    """The benchmark as a rich table, with the floor's formula and the targets below it."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Seconds per epoch: {VARIANT}, SGD, batch size {BATCH_SIZE}")
    headings = ("setting", "min", "median", "max", "CPU s", "x reference", "x floor", "accuracy", "peak MiB",
                "load")
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "setting" else "right")
    for row in result.table.itertuples():
        figures = (row.seconds_min, row.seconds_median, row.seconds_max, row.cpu_seconds_median,
                   row.ratio_to_reference, row.ratio_to_floor, row.accuracy, row.peak_memory_mib, row.load_average)
        formats = ("{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.4f}", "{:.0f}", "{:.1f}")
        cells = ["" if pd.isna(v) else f.format(v) for f, v in zip(formats, figures)]
        failed = row.note if row.note.startswith("failed") else ""
        indent = "  " if row.kind == "runner_eval" else ""
        table.add_row(escape(indent + " ".join([row.setting, failed]).strip()), *cells)
    floor = result.floor
    lines = [f"Floor: {floor['formula']} = {floor['flops'] / 1e9:.1f} GFLOP at "
             f"{floor['gflops_per_second']:.1f} GFLOP/s (numpy float32 at the layer shapes).",
             f"CPU s: the process's CPU seconds in its median epoch (bare fits); load: the highest "
             f"1-minute load average of its runs ({os.cpu_count()} cores here). Other jobs' load "
             "stretches the seconds, hardly the CPU seconds: compare settings of one run, as ratios."]
    for name, check in result.checks.items():
        value = "not measured" if check["value"] is None else f"{check['value']:.3f}"
        verdict = "holds" if check["holds"] else "does NOT hold"
        lines.append(f"{name.replace('_', ' ')}: {value} (target {check['target']}): {verdict}")
    return Group(table, Text("\n".join(lines)))


def _write(out_dir: Path, stem: str, table: pd.DataFrame, details: dict) -> list[Path]:
    from bnlab import environment

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    table.to_csv(csv_path, index=False)
    machine = {k: v for k, v in environment.describe().items() if k not in ("backend", "backend_version")}
    document = {"variant": VARIANT, "batch_size": BATCH_SIZE, "optimizer": OPTIMIZER, "machine": machine,
                **details, "rows": json.loads(table.to_json(orient="records"))}
    json_path.write_text(json.dumps(document, indent=2, default=float) + "\n", encoding="utf-8")
    return [csv_path, json_path]


def _worker(payload: str) -> None:
    """The body of a worker process: measure one setting and print its figures as JSON."""
    request = json.loads(payload)
    setting = request["setting"]
    setting["environment"] = tuple(map(tuple, setting["environment"]))
    measured = measure_setting(Setting(**setting), request["epochs"], request["images"])
    print(json.dumps(measured))


if __name__ == "__main__":
    _worker(sys.argv[1])
