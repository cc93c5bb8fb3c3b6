"""Start Keras and its backend without the C++ libraries' start-up lines burying the display.

TensorFlow 2.21 logs through absl before absl is initialized, so `TF_CPP_MIN_LOG_LEVEL` does
not silence its start-up lines ("All log messages before absl::InitializeLog() ...", oneDNN
and CUDA probing on a machine without a GPU): they are written straight to file descriptor 2.
`import_keras_quietly` holds that descriptor's output back while Keras starts and the backend
probes its devices, then passes on every line that is not one of those start-up lines.

It also drops TensorFlow's "triggered tf.function retracing" warning: every trial builds a new
model whose functions are traced anew, by design, and the warning's advice (define the function
outside the loop) does not apply to a run of many models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile

from bnlab.common.compile_cache import FLAG, enable_compile_cache
from bnlab.common.pages import use_ordinary_pages

# absl's warning, glog-style INFO and WARNING lines, and the failed CUDA probe of a machine
# without a GPU; any other ERROR line, and anything not in glog's format, is passed on. So is
# TensorFlow's "Created device ... GPU:0 ... name: NVIDIA ..." line: it says which GPU trains.
START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+\.cc:\d+\] (?!Created device )"
    r"|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
)


def import_keras_quietly() -> None:
    """Import Keras, let its backend probe the devices, and drop only the start-up lines.

    Also sets TF_CPP_MIN_LOG_LEVEL unless the user set it: to 2, which silences the lines
    TensorFlow logs after absl starts (the CPU-instructions notice, spread over two lines, and
    the first trial's XLA lines), and with them its "Created device ... GPU:0" line, which the
    filter itself always passes on: `TF_CPP_MIN_LOG_LEVEL=0 bnlab run ...` shows it; to 3 while
    TensorFlow's compile cache is on, because TensorFlow reads each cached executable as text
    before it reads it as binary and logs the failed text parse as an ERROR line
    ("Error parsing text-format tensorflow.XlaSerializedCacheEntry"): one for every function a
    warm cache serves. Level 3 drops C++ ERROR lines, not Python exceptions, which carry their
    message, nor FATAL lines. metadata.json records the accelerator either way, and `bnlab run`
    names it at the end.
    Turns on the persistent XLA cache (`bnlab.common.compile_cache`) unless `BNLAB_COMPILE_CACHE=off`,
    and puts NumPy's large arrays on ordinary pages (`bnlab.common.pages`) unless the user chose.
    """
    enable_compile_cache()  # before TensorFlow starts: it reads its XLA flags once
    tensorflow_cache = FLAG in os.environ.get("TF_XLA_FLAGS", "")  # bnlab's folder, or one the user named
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if tensorflow_cache else "2")
    use_ordinary_pages()
    with held_stderr(START_UP_LINE):
        import keras

        # keras.utils.set_random_seed, which every trial calls, imports TensorFlow whenever it
        # is installed, on every backend: start it here, inside the window, whatever the backend.
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow as tf

            # the CUDA probe runs now, not in the first trial; with TensorFlow training on a GPU the
            # devices are created now too, so that its "Created device" line comes before the display
            # (not on another backend: creating them takes the GPU's memory from JAX or torch)
            if tf.config.list_physical_devices("GPU") and keras.backend.backend() == "tensorflow":
                tf.config.list_logical_devices("GPU")
            logging.getLogger("tensorflow").addFilter(_not_a_retracing_warning)


def _not_a_retracing_warning(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def held_stderr(drop: re.Pattern):
    """Hold back everything written to file descriptor 2 (C++ and Python alike) in the block,
    then write it out without the lines that `drop` matches at their start."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (a daemon closed it): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not drop.match(line)))
            sys.stderr.flush()
