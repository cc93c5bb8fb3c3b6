"""Backend choice and execution settings: they reach Keras, are recorded, and change no math."""

import importlib
import importlib.util
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import bnlab
from bnlab import cli
from bnlab.training.trial import load_splits, train_trial

COMPARED = ["loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy"]


def test_backend_option_reaches_keras_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "bnlab", "run", "tiny", "--backend", "tensorflow", "--variants", "no_bn",
         "--seeds", "1", "--epochs", "1", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["backend"] == "tensorflow"
    assert metadata["backend_version"] == importlib.import_module("tensorflow").__version__


def test_uninstalled_backend_is_one_clear_line(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else find_spec(name, *a))
    out = tmp_path / "run"
    assert cli.main(["run", "tiny", "--backend", "jax", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        'bnlab: backend: jax is not installed: pip install -e ".[jax]" from a bnlab checkout, '
        "or the extra 'jax' when installing a wheel\n")
    assert not out.exists()


def test_a_trial_records_the_backend_it_ran_on(tmp_path):
    config = bnlab.load_config("tiny", {"variants": ["no_bn"], "seeds": [0], "training.epochs": 1})
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    metadata = bnlab.load_results(run_dir).metadata
    backend = keras.backend.backend()
    assert metadata["backend"] == backend
    assert metadata["backend_version"] == importlib.import_module(backend).__version__


def _epochs(settings: dict):
    config = bnlab.load_config("tiny", {"variants": ["bn_before_activation"], "training.epochs": 3, **settings})
    return train_trial(config, config.variants[0], 0, load_splits(config, None)).epochs


def test_speed_settings_change_no_math():
    """bnlab's defaults against Keras's: one step per call, batch 32 evaluation, jit "auto"."""
    fast = _epochs({})
    # Keras's jit_compile="auto" is off for TensorFlow on a CPU-only machine and on for JAX
    reference = _epochs({"training.steps_per_execution": 1, "training.eval_batch_size": 32,
                         "training.jit_compile": keras.backend.backend() == "jax"})
    # Same batches, order and updates. Measured: training losses agree to 2.4e-7 (XLA's
    # rounding; without XLA they are identical), evaluation to 1.2e-7 (summation order).
    np.testing.assert_allclose(fast[COMPARED], reference[COMPARED], rtol=1e-6, atol=1e-7)
    assert not fast["loss"].isna().any() and fast["loss"].iloc[-1] < fast["loss"].iloc[0]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_backend_records_jax(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "bnlab", "run", "tiny", "--backend", "jax", "--variants", "no_bn",
         "--seeds", "1", "--epochs", "1", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["backend"], metadata["backend_version"]) == ("jax", importlib.import_module("jax").__version__)
