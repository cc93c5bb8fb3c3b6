"""The runner in step mode (evaluations every N optimizer steps), with the activation probe and a grid."""

import numpy as np
import pandas as pd
import pytest

import bnlab
from bnlab.runs.progress import NullProgress

STEP_CONFIG = {
    "name": "steps",
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512, "binarize": True},
    "variants": [{"name": n, "overrides": {"hidden_units": [16, 12, 8], "activation": "sigmoid"}}
                 for n in ("no_bn", "bn_before_activation")],
    "seeds": 1,
    # 512 images / 32 = 16 steps an epoch; 40 steps end in the middle of the third epoch
    "training": {"steps": 40, "eval_every_steps": 8, "steps_per_execution": 4, "batch_size": 32,
                 "optimizer": {"name": "sgd", "learning_rate": 0.5}},
    "targets": [0.2],
    "activation_probe": {"hidden_layer": 3, "units": [0, 7], "probe_examples": 64},
}


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("steps") / "run"
    bnlab.run_experiment(bnlab.load_config(STEP_CONFIG), run_dir)
    return bnlab.load_results(run_dir)


def test_evaluations_fall_every_n_steps_and_training_stops_at_steps(step_run):
    for _, epochs in step_run.epochs.groupby("variant"):
        assert epochs["step"].tolist() == [8, 16, 24, 32, 40]
        assert epochs["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert (step_run.trials["epochs_run"] == 5).all()


def test_steps_to_target_is_recorded(step_run):
    trials = step_run.trials.set_index("variant")
    epochs = step_run.epochs
    for variant, row in trials.iterrows():
        rows = epochs[(epochs["variant"] == variant) & (epochs["val_accuracy"] >= 0.2)]
        expected = rows["step"].iloc[0] if len(rows) else None
        assert (pd.isna(row["steps_to_0.2"]) and expected is None) or row["steps_to_0.2"] == expected


def test_activation_probe_records_at_start_and_every_evaluation(step_run):
    activations = step_run.activations
    assert list(activations.columns) == ["variant", "seed", "step", "unit", "p15", "p50", "p85"]
    for _, table in activations.groupby("variant"):
        assert sorted(set(table["step"])) == [0, 8, 16, 24, 32, 40]
        assert table.groupby("step")["unit"].apply(list).tolist() == [[0, 7]] * 6
    ordered = activations[["p15", "p50", "p85"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all()  # percentiles ascend


def test_the_probe_watches_the_sigmoid_input(step_run):
    # sigmoid outputs lie in (0, 1); its input with BN before it is centred near 0, so negative values show
    bn = step_run.activations.query("variant == 'bn_before_activation' and step == 40")
    assert (bn["p15"] < 0).any()


def test_binarized_input_reaches_the_trial():
    config = bnlab.load_config(STEP_CONFIG)
    splits = bnlab.training.trial.load_splits(config, None)
    assert set(np.unique(splits.x_train)) == {0, 255}


def test_grid_point_reaches_the_optimizer(tmp_path):
    config = bnlab.load_config({
        "name": "grid", "dataset": {"validation_size": 256, "train_subset": 512},
        "variants": ["no_bn"], "seeds": 1,
        "training": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.1}},
        "targets": [0.5], "grid": {"training.optimizer.learning_rate": [1e-9, 0.5]},
    })
    bnlab.run_experiment(config, tmp_path / "run")
    trials = bnlab.load_results(tmp_path / "run").trials.set_index("variant")
    assert list(trials.index) == ["no_bn-learning_rate1e-09", "no_bn-learning_rate0.5"]
    assert trials["base_variant"].tolist() == ["no_bn", "no_bn"]
    assert trials["learning_rate"].tolist() == [1e-9, 0.5]
    # with lr 1e-9 nothing is learnt: inference-mode training accuracy stays near chance
    assert trials.loc["no_bn-learning_rate1e-09", "final_train_eval_accuracy"] < 0.3
    assert trials.loc["no_bn-learning_rate0.5", "final_train_eval_accuracy"] > 0.6


def test_backend_grid_runs_each_backend_in_its_own_process(tmp_path):
    pytest.importorskip("jax")
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    config = bnlab.load_config({
        "name": "backends", "dataset": {"validation_size": 256, "train_subset": 256},
        "variants": ["bn_before_activation"], "seeds": 1,
        "training": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.1}},
        "targets": [0.5], "grid": {"backend": [keras.backend.backend(), other]},
    })
    spy = EpochSpy()
    bnlab.run_experiment(config, tmp_path / "run", progress=spy)
    trials = bnlab.load_results(tmp_path / "run").trials.set_index("variant")
    here, there = f"bn_before_activation-backend_{keras.backend.backend()}", f"bn_before_activation-backend_{other}"
    assert list(trials.index) == [here, there]
    assert trials["backend"].tolist() == [keras.backend.backend(), other]  # recorded by the process that trained
    assert (trials["status"] == "complete").all()
    # the other backend's epochs reached this process's progress display, tagged with their trial
    assert [(row["variant"], row["epoch"]) for row in spy.rows if row["variant"] == there] == [(there, 1), (there, 2)]
    # both learnt (seeded initial weights differ between backends, so the losses do too)
    assert (trials["final_train_eval_accuracy"] > 0.5).all()


def test_backend_grid_is_refused_on_dask():
    from bnlab.config import ConfigError
    from bnlab.execution.executors import check_executor

    config = bnlab.load_config("tiny", {"grid": {"backend": ["tensorflow", "jax"]}, "executor.name": "dask"})
    with pytest.raises(ConfigError, match="grid.backend: expected the local executor"):
        check_executor(config)


class EpochSpy(NullProgress):
    """Remembers the epoch rows the progress display received."""

    def __init__(self):
        self.rows = []

    def epoch(self, row):
        self.rows.append(row)
