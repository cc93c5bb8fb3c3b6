"""A user's own model end to end: a small CNN with BN registered with `register_variant`, then the
same CNN named by a config's `builder` key, each trained beside no_bn on a tiny slice of MNIST and
reported; and the `bnlab` command's one-line refusals of builders it cannot use."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import bnlab
from bnlab.config import load_config
from bnlab.report.write import REPORT_FIGURES

TESTS = Path(__file__).resolve().parent
CONFIG = {
    "name": "custom_cnn",
    "description": "a user's CNN beside no_bn; a smoke test, not a study",
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
    "variants": ["no_bn", "small_cnn"],
    "seeds": 1,
    # no XLA: compiling two tiny models would take longer than training them
    "training": {"epochs": 1, "batch_size": 64, "jit_compile": False,
                 "optimizer": {"name": "sgd", "learning_rate": 0.05}},
    "targets": [0.2],
}
PARAMETER_COLUMNS = ["params_total", "params_trainable", "params_non_trainable"]


@pytest.fixture
def models(monkeypatch):
    """The user's module: tests/ is no package, so its modules import by their own names once the
    folder is on sys.path (a user's own package is on theirs). The variant table is left as found."""
    monkeypatch.syspath_prepend(str(TESTS))
    module = importlib.import_module("extension_models")
    yield module
    module.unregister_added()


def cnn_parameters(filters=8, channels=1, classes=10, kernel=3):
    """(total, trainable, non-trainable) of Conv2D -> BN -> ReLU -> pooling -> Dense, from the layer shapes."""
    conv = kernel * kernel * channels * filters + filters  # kernel and bias
    gamma_beta, moving = 2 * filters, 2 * filters  # BN: trained scale and offset; moving mean and variance
    dense = filters * classes + classes
    return conv + gamma_beta + moving + dense, conv + gamma_beta + dense, moving


def test_cnn_parameters_by_hand():
    assert cnn_parameters() == (202, 186, 16)  # 80 conv + 32 BN + 90 dense; 16 moving statistics


def test_registered_cnn_runs_and_is_reported(models, tmp_path):
    bnlab.register_variant("small_cnn", models.build_cnn, models.add_channel, "Conv-BN-ReLU, pooled")
    config = load_config(CONFIG)
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    report = bnlab.write_report(run_dir).read_text(encoding="utf-8")

    trials = pd.read_csv(run_dir / "trials.csv").set_index("variant")
    assert list(trials.index) == ["no_bn", "small_cnn"]
    assert tuple(trials.loc["small_cnn", PARAMETER_COLUMNS]) == cnn_parameters()
    assert trials.loc["small_cnn", "status"] == "complete"
    assert 0.0 <= trials.loc["small_cnn", "test_accuracy"] <= 1.0
    table_rows = [line for line in report.splitlines() if line.startswith("|")]
    assert any("small_cnn" in row for row in table_rows), "the CNN is missing from the report's tables"
    for name, _ in REPORT_FIGURES:
        assert (run_dir / "figures" / name).stat().st_size > 0, name
    saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["variants"][1]["builder"] == "extension_models:build_cnn"  # for workers and later sessions
    assert bnlab.load_results(run_dir).config == config


def test_builder_key_runs_the_cnn_with_its_overrides(models, tmp_path):
    data = {**CONFIG, "variants": ["no_bn", {"name": "yaml_cnn", "builder": "extension_models:build_cnn",
                                             "preprocess": "extension_models:add_channel",
                                             "overrides": {"filters": 4}}]}
    config = load_config(data)
    bnlab.unregister_variant("yaml_cnn")  # a worker process starts without it ...
    assert load_config(config.to_dict()) == config  # ... and registers it from the plain data it receives
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    trials = pd.read_csv(run_dir / "trials.csv").set_index("variant")
    assert tuple(trials.loc["yaml_cnn", PARAMETER_COLUMNS]) == cnn_parameters(filters=4)
    bnlab.write_report(run_dir)
    assert (run_dir / "figures" / "validation_accuracy.png").is_file()


def bnlab_run(tmp_path, variants):
    path, out = tmp_path / "config.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump({**CONFIG, "variants": variants}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "bnlab", "run", str(path), "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    lines = result.stderr.splitlines()
    assert all(line.startswith("bnlab: ") for line in lines), lines  # no start-up lines of the builder's Keras
    return path, lines


def test_command_refuses_a_missing_module_or_function(tmp_path):
    path, lines = bnlab_run(tmp_path, [{"name": "a", "builder": "no_such_module_xyz:build_cnn"},
                                       {"name": "b", "builder": "extension_models:build_cmm"}])
    assert lines == [
        f"bnlab: {path}: variants[0].builder: expected 'module:function' naming an importable function (module "
        "no_such_module_xyz cannot be imported: No module named 'no_such_module_xyz'), received the string "
        "'no_such_module_xyz:build_cnn'.",
        f"bnlab: {path}: variants[1].builder: expected 'module:function' naming an importable function (module "
        "extension_models has no function build_cmm), received the string 'extension_models:build_cmm'.",
    ]


def test_command_refuses_a_builder_that_returns_no_model(tmp_path):
    _, lines = bnlab_run(tmp_path, ["no_bn", {"name": "text", "builder": "extension_models:build_not_a_model"}])
    assert lines == [
        "bnlab: custom_cnn: variants[1].builder: build_model: variant 'text': expected its builder "
        "extension_models:build_not_a_model to return an uncompiled keras.Model, received a str ('not a model')."]
