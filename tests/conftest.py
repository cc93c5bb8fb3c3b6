"""Fixtures shared by the test files: one tiny run, trained once per test session.

Tests that only need *a* finished run (to read it back, report it, plot it, list it, run a
notebook on it) share `tiny_run` instead of training their own. It is the tiny config cut to
two variants: `no_bn` and `bn_before_activation`, seeds 0 and 1, 2 epochs on 512 images, so
4 trials, trained once, the first time a test asks for it.

The shared folder is read-only by agreement: a test that writes into a run folder (a report
writes report.md and figures/, a resumed run writes trials and metadata) takes a copy from
`tiny_run_copy` or `copy_tiny_run`, so tests stay independent of each other and of their order.
The session checks the agreement: if a test changed the shared folder, the session's teardown fails and
names the changed files.

Tests that check training itself (resume, determinism, step mode) keep training what they need.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import bnlab
from bnlab.common import compile_cache
from bnlab.runs.progress import NullProgress

# One compile cache for the session, set before TensorFlow starts (the imports above do not start it), so
# that no test, nor any bnlab command a test starts, writes into the user's ~/.cache (measured: the tests
# run no faster or slower with it; bnlab.common.compile_cache; BNLAB_COMPILE_CACHE=off: none).
_SESSION_CACHE = tempfile.mkdtemp(prefix="bnlab-xla-")
os.environ.setdefault(compile_cache.VARIABLE, _SESSION_CACHE)
compile_cache.enable_compile_cache()

TINY_VARIANTS = ("no_bn", "bn_before_activation")  # the baseline and one BN placement: the fewest that compare


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


class TrialOrder(NullProgress):
    """Remembers the (variant, seed) of each trial in the order the runner finished them."""

    def __init__(self):
        self.trained = []

    def trial_done(self, record):
        self.trained.append((record.variant, record.seed))


@pytest.fixture(scope="session")
def tiny_config():
    """The config of the shared run: `tiny` with the variants in `TINY_VARIANTS`."""
    return bnlab.load_config("tiny", {"variants": list(TINY_VARIANTS)})


@pytest.fixture(scope="session")
def _tiny_training(tiny_config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("shared-runs") / "tiny"
    order = TrialOrder()
    bnlab.run_experiment(tiny_config, run_dir, progress=order)
    before = _snapshot(run_dir)
    yield run_dir, tuple(order.trained)
    after = _snapshot(run_dir)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"a test wrote into the shared tiny run (use tiny_run_copy); changed: {', '.join(changed)}"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, modification time) of every file under folder, by relative path."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="session")
def tiny_run(_tiny_training) -> Path:
    """The folder of the shared finished run of `tiny_config`; read it, never write into it."""
    return _tiny_training[0]


@pytest.fixture(scope="session")
def tiny_trial_order(_tiny_training) -> tuple[tuple[str, int], ...]:
    """(variant, seed) of the shared run's trials, in the order the runner trained them."""
    return _tiny_training[1]


@pytest.fixture(scope="session")
def tiny_results(tiny_run):
    """`bnlab.load_results` of the shared run; its tables are shared too, so do not modify them."""
    return bnlab.load_results(tiny_run)


@pytest.fixture
def copy_tiny_run(tiny_run, tmp_path):
    """A function copying the shared run to a folder (default: tmp_path / "tiny") and returning the copy."""

    def copy(destination: str | Path | None = None) -> Path:
        return Path(shutil.copytree(tiny_run, destination or tmp_path / "tiny"))

    return copy


@pytest.fixture
def tiny_run_copy(copy_tiny_run) -> Path:
    """A fresh copy of the shared run in this test's tmp_path, for tests that write into a run folder."""
    return copy_tiny_run()


# The small-batch study cut to what its report and notebook need: ghost BN at two normalization
# batches, batch renorm and layer norm, 2 seeds, 1 epoch on 512 images at an optimizer batch of 32, without XLA.
SMALL_BATCH_CUT = {
    "variants": [
        {"name": "ghost_bn_before_activation", "label": "bn_g2", "overrides": {"virtual_batch_size": 2}},
        {"name": "ghost_bn_before_activation", "label": "bn_g16", "overrides": {"virtual_batch_size": 16}},
        {"name": "renorm_before_activation", "label": "renorm_g4",
         "overrides": {"virtual_batch_size": 4, "renorm_warmup_steps": 4, "renorm_d_max_steps": 8,
                       "renorm_r_max_steps": 12}},
        {"name": "layer_norm_before_activation", "label": "layer_norm"},
    ],
    "claims": [{"id": "bn_fails_at_g2", "statement": "BN at g = 2 is less accurate than at 16", "source": "test",
                "metric": "test_accuracy", "variant": "bn_g2", "baseline": "bn_g16", "expect": "lower"}],
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
    "seeds": 2,
    "training.epochs": 1,
    "training.batch_size": 32,
    "training.jit_compile": False,  # XLA compiling each of these 16-step trials costs more than it saves (36 s vs 15 s)
}


@pytest.fixture(scope="session")
def small_batch_config():
    """`configs/small_batch.yaml` cut to `SMALL_BATCH_CUT`: 8 trials of 16 steps."""
    return bnlab.load_config("small_batch", SMALL_BATCH_CUT)


@pytest.fixture(scope="session")
def small_batch_run(small_batch_config, tmp_path_factory) -> Path:
    """The folder of the shared finished cut of the small-batch study; read it, never write into it."""
    run_dir = tmp_path_factory.mktemp("shared-runs") / "small_batch"
    bnlab.run_experiment(small_batch_config, run_dir)
    return run_dir


# The tiny config with both extra evaluation modes and saved models: BN before the activation and
# no BN (the modes must agree for a network without BN), 2 seeds, 2 epochs, without XLA.
POPULATION_CUT = {
    "variants": ["bn_before_activation", "no_bn"],
    "evaluation": {"modes": ["precise_bn", "batch_statistics"], "precise_bn_examples": 300},
    "training.save_model": True,
    "training.jit_compile": False,
}


@pytest.fixture(scope="session")
def population_run(tmp_path_factory) -> Path:
    """The folder of the shared finished run of `POPULATION_CUT`; read it, never write into it."""
    run_dir = tmp_path_factory.mktemp("shared-runs") / "population"
    bnlab.run_experiment(bnlab.load_config("tiny", POPULATION_CUT), run_dir)
    return run_dir


# The mechanisms studies cut to a tiny run with every probe: no BN and BN before ReLU on a
# 784-32-32-32-10 network (four kernels: the growth fit needs two inner ones), weight decay 0 and 0.01
# on the kernels feeding BN, 2 seeds, 8 steps of 32 on 256 images, without XLA.
_DEEP = {"hidden_units": [32, 32, 32], "kernel_initializer": "he_normal"}
MECHANISMS_CUT = {
    "variants": [{"name": "no_bn", "label": "no_bn", "overrides": _DEEP},
                 {"name": "bn_before_activation", "label": "bn", "overrides": _DEEP}],
    "grid": {"training.optimizer.weight_decay": [0.0, 0.01]},
    "training.weight_decay_on": "normalized_kernels",
    "training.epochs": 1,
    "training.jit_compile": False,
    "training.optimizer.learning_rate": 0.05,
    "training.steps_per_execution": 4,  # batch ends at steps 4 and 8, where the probes record
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 256},
    "probes": {"init_gradients": {"examples": 64},
               "landscape": {"examples": 64, "every_n_steps": 4},
               "covariate_shift": {"examples": 64, "every_n_steps": 4},
               "kernel_norms": {"every_n_steps": 4}},
    "claims": [
        {"id": "explodes", "statement": "BN's gradients grow toward the input", "source": "test",
         "metric": "init_gradient_growth", "variant": "bn", "baseline": "no_bn", "expect": "higher",
         "at": {"training.optimizer.weight_decay": 0.0}},
        {"id": "smoother", "statement": "BN is smoother", "source": "test", "metric": "mean_beta_smoothness",
         "variant": "bn", "baseline": "no_bn", "expect": "lower", "at": {"training.optimizer.weight_decay": 0.0}},
        {"id": "decay_raises_lr", "statement": "decay raises the effective learning rate", "source": "test",
         "metric": "final_effective_learning_rate", "variant": "bn", "baseline": "bn", "expect": "higher",
         "at": {"training.optimizer.weight_decay": 0.01}, "baseline_at": {"training.optimizer.weight_decay": 0.0}},
    ],
}


@pytest.fixture(scope="session")
def mechanisms_config():
    """The tiny config cut to `MECHANISMS_CUT`: 8 trials of 8 steps with every probe."""
    return bnlab.load_config("tiny", MECHANISMS_CUT)


@pytest.fixture(scope="session")
def mechanisms_run(mechanisms_config, tmp_path_factory) -> Path:
    """The folder of the shared finished run of `MECHANISMS_CUT`; read it, never write into it."""
    run_dir = tmp_path_factory.mktemp("shared-runs") / "mechanisms"
    bnlab.run_experiment(mechanisms_config, run_dir)
    return run_dir
