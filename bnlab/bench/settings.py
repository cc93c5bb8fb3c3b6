"""What the benchmark trains and under which execution settings; which backends it can time."""

from __future__ import annotations

import dataclasses

from bnlab.common.backends import compile_settings, missing_backend
from bnlab.config import BACKENDS, TrainingConfig

VARIANT = "bn_before_activation"
BATCH_SIZE = 32  # the placement study's batch size
OPTIMIZER = {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}  # the placement study's
DENSE_SHAPES = ((784, 300), (300, 100), (100, 10))  # the MLP's Dense kernels (inputs, units)
FULL_IMAGES = 60000  # all MNIST training images; the test set validates and scores
QUICK_IMAGES = 1024  # --quick: a slice that exercises every code path in seconds


class BenchError(RuntimeError):
    """A benchmark setting could not run."""


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of training the benchmark model.

    Attributes:
        name: the table's row label.
        backend: the Keras backend its process runs on.
        kind: "reference" (Keras defaults), "fit" (a bare `fit` with bnlab's compile
            settings) or "runner" (`bnlab.training.trial.train_trial`).
        steps_per_execution, jit_compile, eval_batch_size: None keeps the kind's default
            (Keras's for the reference, bnlab's `TrainingConfig` for the others).
        input: "numpy" (arrays, as bnlab feeds them) or "tf.data" (a pre-built, cached and
            shuffled `tf.data.Dataset`: another data order, so only for `--explore`).
        environment: (name, value) pairs added to the measuring process's environment, e.g.
            TensorFlow's thread pool sizes, which must be set before TensorFlow starts.
        fused_steps: "fit" kind: bnlab's fused steps on TensorFlow (`training.fused_steps`); False
            runs Keras's own step loop with the same settings.
    """

    name: str
    backend: str
    kind: str
    steps_per_execution: int | None = None
    jit_compile: bool | None = None
    eval_batch_size: int | None = None
    input: str = "numpy"
    environment: tuple[tuple[str, str], ...] = ()
    fused_steps: bool = True

    def execution_settings(self) -> dict:
        """steps_per_execution, jit_compile and eval_batch_size as this setting runs them."""
        keras_defaults = {"steps_per_execution": 1, "jit_compile": "auto", "eval_batch_size": 32}
        defaults = keras_defaults if self.kind == "reference" else {
            name: getattr(TrainingConfig, name) for name in keras_defaults}
        chosen = {name: default if getattr(self, name) is None else getattr(self, name)
                  for name, default in defaults.items()}
        if self.kind != "reference":  # what the backend can run, as in bnlab.training.trial.train_trial
            chosen.update(compile_settings(self.backend, chosen["steps_per_execution"], chosen["jit_compile"]))
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
    Setting("bnlab fit, Keras's step loop (fused_steps off)", "tensorflow", "fit", fused_steps=False),
    Setting("bnlab fit, jit_compile off", "tensorflow", "fit", jit_compile=False),
    Setting("bnlab fit, steps_per_execution 1", "tensorflow", "fit", steps_per_execution=1),
    Setting("bnlab fit, steps_per_execution 256", "tensorflow", "fit", steps_per_execution=256),
    Setting("bnlab fit, tf.data input", "tensorflow", "fit", input="tf.data"),
    # one intra-op thread: XLA's per-step matmuls are too small to share between two cores,
    # and the second core is left to tf.data and Python
    Setting("bnlab fit, TensorFlow intra-op threads 1", "tensorflow", "fit", environment=_ONE_THREAD),
    Setting("bnlab runner, TensorFlow intra-op threads 1", "tensorflow", "runner", environment=_ONE_THREAD),
)


def _xla(flags: str) -> tuple[tuple[str, str], ...]:
    return (("XLA_FLAGS", flags),)


_YNN_FUSIONS = "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"
# Extra settings of `--explore` when JAX is benchmarked: XLA's CPU options (XLA_FLAGS, read
# when JAX starts) that might speed up the small matmuls of batch size 32, against the same
# bare fit without them. None brought JAX near 2x the floor here (docs/speed.md), so none
# is a default; an option the installed jaxlib does not know fails its row, not the benchmark.
EXPLORE_JAX = (
    Setting("bnlab fit [jax]", "jax", "fit"),
    Setting("bnlab fit [jax], steps_per_execution 375", "jax", "fit", steps_per_execution=375),
    Setting("bnlab fit [jax], XLA one-thread Eigen", "jax", "fit",
            environment=_xla("--xla_cpu_multi_thread_eigen=false")),
    Setting("bnlab fit [jax], XLA XNNPACK dots", "jax", "fit",
            environment=_xla("--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")),
    Setting("bnlab fit [jax], XLA oneDNN dots", "jax", "fit",
            environment=_xla("--xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")),
    Setting("bnlab fit [jax], XLA YNNPACK fusions", "jax", "fit",
            environment=_xla(f"--xla_cpu_experimental_ynn_fusion_type={_YNN_FUSIONS}")),
)


def explore_settings(backends: list[str]) -> list[Setting]:
    """The `--explore` settings: TensorFlow's, and JAX's when JAX is among `backends`."""
    return list(EXPLORE) + (list(EXPLORE_JAX) if "jax" in backends else [])


def installed_backends() -> list[str]:
    """The Keras backends whose package is importable here, in `BACKENDS` order."""
    return [name for name in BACKENDS if missing_backend(name) is None]


def default_settings(backends: list[str]) -> list[Setting]:
    """The reference, bnlab's bare fit and bnlab's runner on every given backend."""
    # The runner with Keras's default execution settings estimates the placement study's
    # time with reference settings (its epochs are this run's epochs, evaluation included).
    settings = [Setting(REFERENCE, "tensorflow", "reference"), Setting(BARE_FIT, "tensorflow", "fit"),
                Setting(RUNNER_AS_REFERENCE, "tensorflow", "runner", 1, False, 32)]
    return settings + [Setting(f"bnlab runner [{name}]", name, "runner") for name in backends]
