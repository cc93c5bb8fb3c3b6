"""Times bnlab's training epoch against plain Keras code and the machine's matmul floor.

Every setting trains `bn_before_activation` with SGD at batch size 32 on the MNIST
training images, in its own Python process (Keras picks its backend when first imported,
and each process's peak memory is its own). The first epoch (graph building) is a warm-up;
the next `epochs` are timed. The floor is the time the Dense layers' matrix products of one
epoch take at the float32 rate this machine reaches for their shapes.

Modules, in the order data flows: `settings` (what is trained, how), `measure` (one setting
timed in a measuring process of its own), `floor`, `table` (figures, targets, rendering), `run`
(all of it), and `study` (whole studies, each the real `bnlab run`, against their steady training).
The names below are imported on first use (PEP 562), as the root package's are:
importing one bench module imports no other, and `python -m bnlab.bench.measure` runs the
measuring module once, not first as a part of this package.

Example:
    >>> result = run_benchmark("benchmarks/results", epochs=3)
    >>> result.table[["setting", "seconds_median", "ratio_to_reference"]]
"""

import importlib

_PUBLIC = {
    "measure_floor": "bnlab.bench.floor",
    "BenchResult": "bnlab.bench.run",
    "run_benchmark": "bnlab.bench.run",
    "COLUMNS": "bnlab.bench.table",
    "bench_table": "bnlab.bench.table",
    "measure_setting": "bnlab.bench.measure",
    **{name: "bnlab.bench.study" for name in ("StudyResult", "run_study_rounds", "study_figures", "study_table")},
    **{name: "bnlab.bench.settings" for name in (
        "BARE_FIT", "BATCH_SIZE", "EXPLORE", "EXPLORE_JAX", "FULL_IMAGES", "OPTIMIZER", "QUICK_IMAGES",
        "REFERENCE", "RUNNER_AS_REFERENCE", "VARIANT", "BenchError", "Setting", "default_settings",
        "explore_settings", "installed_backends")},
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'bnlab.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
