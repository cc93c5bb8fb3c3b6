"""Times bnlab's training epoch against plain Keras code and the machine's matmul floor.

Every setting trains `bn_before_activation` with SGD at batch size 32 on the MNIST
training images, in its own Python process (Keras picks its backend when first imported,
and each process's peak memory is its own). The first epoch (graph building) is a warm-up;
the next `epochs` are timed. The floor is the time the Dense layers' matrix products of one
epoch take at the float32 rate this machine reaches for their shapes.

Modules, in the order data flows: `settings` (what is trained, how), `worker` (one setting
timed in its own process), `floor`, `table` (figures, targets, rendering), `run` (all of it).

Example:
    >>> result = run_benchmark("benchmarks/results", epochs=3)
    >>> result.table[["setting", "seconds_median", "ratio_to_reference"]]
"""

from bnlab.bench.floor import measure_floor
from bnlab.bench.run import BenchResult, run_benchmark
from bnlab.bench.settings import (
    BARE_FIT,
    BATCH_SIZE,
    EXPLORE,
    EXPLORE_JAX,
    FULL_IMAGES,
    OPTIMIZER,
    QUICK_IMAGES,
    REFERENCE,
    RUNNER_AS_REFERENCE,
    VARIANT,
    BenchError,
    Setting,
    default_settings,
    explore_settings,
    installed_backends,
)
from bnlab.bench.table import COLUMNS, bench_table
from bnlab.bench.worker import measure_setting

__all__ = [
    "BARE_FIT", "BATCH_SIZE", "COLUMNS", "EXPLORE", "EXPLORE_JAX", "FULL_IMAGES", "OPTIMIZER", "QUICK_IMAGES",
    "REFERENCE", "RUNNER_AS_REFERENCE", "VARIANT", "BenchError", "BenchResult", "Setting",
    "bench_table", "default_settings", "explore_settings", "installed_backends", "measure_floor", "measure_setting",
    "run_benchmark",
]
