"""Optional tracking on the tiny config: MLflow runs read back through MLflow, TensorBoard logs."""

import contextlib
import logging
import subprocess
import sys

import pandas as pd
import pytest

import bnlab
from bnlab.config import ConfigError
from bnlab.runs.tracking import check_tracking, trial_params
from bnlab.runs.trial_curves import plot_trial_curves
from bnlab.training.trial import load_splits, train_trial

TIMING = ["train_seconds", "val_seconds", "train_eval_seconds"]
LABELS = ["no_bn", "bn_before_activation"]


def tiny(**overrides):
    return bnlab.load_config("tiny", {"variants": LABELS, "seeds": 1, **overrides})


@contextlib.contextmanager
def mlflow_store(folder):
    """MLflow's default store pointed at a temporary folder, as a user would with the variable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)  # the default artifact root is ./mlruns: keep it out of the repo
        yield


def search_runs(folder) -> pd.DataFrame:
    import mlflow

    with mlflow_store(folder):
        return mlflow.search_runs(experiment_names=["tiny"]).set_index("tags.mlflow.runName")


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    """A tiny run logged to a temporary MLflow store: (run folder, its MLflow runs, a client)."""
    mlflow = pytest.importorskip("mlflow")
    config = tiny(**{"tracking.mlflow": True})
    store = tmp_path_factory.mktemp("mlflow")
    with mlflow_store(store):
        run_dir = bnlab.run_experiment(config, store / "run")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    return run_dir, search_runs(store), client


def test_each_trial_is_one_finished_mlflow_run(mlflow_run):
    run_dir, runs, _ = mlflow_run
    assert sorted(runs.index) == ["bn_before_activation-seed0", "no_bn-seed0"]
    assert set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.status"]) == {"complete"}
    assert set(runs["tags.bnlab.run_dir"]) == {str(run_dir.resolve())}


def test_params_hold_the_variant_seed_and_flattened_config(mlflow_run):
    _, runs, _ = mlflow_run
    run = runs.loc["bn_before_activation-seed0"]
    assert run["params.variant"] == "bn_before_activation"
    assert run["params.variant_name"] == "bn_before_activation"
    assert run["params.seed"] == "0"
    assert run["params.training.batch_size"] == "32"
    assert run["params.training.optimizer.name"] == "sgd"
    assert run["params.training.optimizer.learning_rate"] == "0.01"
    assert run["params.dataset.train_subset"] == "512"
    assert run["params.targets"] == "[0.5, 0.97]"


def test_epoch_metric_history_equals_epochs_csv(mlflow_run):
    run_dir, runs, client = mlflow_run
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for label in LABELS:
        expected = epochs[epochs["variant"] == label]
        run_id = runs.loc[f"{label}-seed0", "run_id"]
        for name in ("val_accuracy", "loss", "train_eval_accuracy", "train_seconds"):
            history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == [1, 2]
            assert [m.value for m in history] == pytest.approx(list(expected[name]), rel=1e-12)


def test_final_metrics_equal_trials_csv(mlflow_run):
    run_dir, runs, _ = mlflow_run
    trials = pd.read_csv(run_dir / "trials.csv").set_index("variant")
    for label in LABELS:
        run, trial = runs.loc[f"{label}-seed0"], trials.loc[label]
        for name in ("test_accuracy", "test_loss", "best_val_accuracy", "params_total"):
            assert run[f"metrics.{name}"] == pytest.approx(trial[name], rel=1e-12)
        reached = trial["epochs_to_0.5"]
        if pd.notna(reached):
            assert run["metrics.epochs_to_0.5"] == reached
        assert "metrics.diverged_epoch" not in runs or pd.isna(run["metrics.diverged_epoch"])


def test_epochs_csv_is_an_artifact(mlflow_run, tmp_path):
    run_dir, runs, client = mlflow_run
    run_id = runs.loc["no_bn-seed0", "run_id"]
    assert [a.path for a in client.list_artifacts(run_id)] == ["epochs.csv", "figures"]
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/learning_curves.png"]
    copy = client.download_artifacts(run_id, "epochs.csv", str(tmp_path))
    assert open(copy).read() == (run_dir / "trials" / "no_bn-seed0" / "epochs.csv").read_text()


def test_resuming_a_finished_run_logs_nothing_again(mlflow_run):
    run_dir, _, _ = mlflow_run
    config = tiny(**{"tracking.mlflow": True})
    with mlflow_store(run_dir.parent):
        bnlab.run_experiment(config, run_dir)
    assert len(search_runs(run_dir.parent)) == 2


def test_a_logging_failure_warns_and_keeps_the_trial(tmp_path, monkeypatch, caplog):
    pytest.importorskip("mlflow")
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    config = tiny(**{"tracking.mlflow": True, "training.epochs": 1, "variants": ["no_bn"]})
    with caplog.at_level(logging.WARNING, logger="bnlab.runs.tracking"):
        run_dir = bnlab.run_experiment(config, tmp_path / "run")
    assert "MLflow logging of trial no_bn-seed0 failed" in caplog.text
    assert str(run_dir / "trials" / "no_bn-seed0") in caplog.text
    results = bnlab.load_results(run_dir)
    assert list(results.trials["variant"]) == ["no_bn"]
    assert results.metadata["status"] == "complete"


@pytest.mark.parametrize(
    "module, option, message",
    [
        ("mlflow", "tracking.mlflow",
         "MLflow logging was asked for (tracking.mlflow / --mlflow) but mlflow is not installed: "
         'pip install -e ".[mlflow]" in a bnlab checkout, or the extra bnlab[mlflow] of a wheel'),
        ("tensorboard", "tracking.tensorboard",
         "TensorBoard logging was asked for (tracking.tensorboard / --tensorboard) but tensorboard "
         'is not installed: pip install -e ".[tensorboard]" in a bnlab checkout, or the extra '
         "bnlab[tensorboard] of a wheel"),
    ],
)
def test_check_tracking_names_what_to_install(monkeypatch, module, option, message):
    for name in [name for name in sys.modules if name.split(".")[0] == module] or [module]:
        monkeypatch.setitem(sys.modules, name, None)  # what `import` meets when it is not installed
    with pytest.raises(ConfigError) as caught:
        check_tracking(tiny(**{option: True}))
    assert caught.value.problems == [message]


def test_missing_mlflow_stops_the_run_before_anything_is_written(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[mlflow\]"'):
        bnlab.run_experiment(tiny(**{"tracking.mlflow": True}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_check_tracking_needs_nothing_when_tracking_is_off(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    check_tracking(tiny())


def test_trial_params_flatten_overrides():
    config = bnlab.load_config(
        "tiny", {"variants": [{"name": "bn_input", "label": "input", "overrides": {"momentum": 0.9}}]}
    )
    params = trial_params(config, config.variants[0], 3)
    assert {k: params[k] for k in ("variant", "variant_name", "seed", "overrides.momentum")} == {
        "variant": "input", "variant_name": "bn_input", "seed": "3", "overrides.momentum": "0.9",
    }
    assert params["training.steps_per_execution"] == "64"
    assert params["backend"] == "None"


def test_trial_params_carry_the_trials_grid_point():
    config = bnlab.load_config("tiny", {"grid": {"training.optimizer.learning_rate": [0.5, 2.0]}})
    variant = config.trial_variants[1]
    params = trial_params(config, variant, 0)
    assert params["variant"] == "no_bn-learning_rate2"
    assert params["training.optimizer.learning_rate"] == "2.0"


def test_trial_curves_show_three_lines_per_panel():
    epochs = pd.DataFrame({
        "epoch": [1, 2, 3], "loss": [0.5, 0.3, 0.2], "accuracy": [0.8, 0.9, 0.95],
        "val_loss": [0.4, 0.35, 0.3], "val_accuracy": [0.85, 0.9, 0.92],
        "train_eval_loss": [0.45, 0.3, 0.25], "train_eval_accuracy": [0.84, 0.91, 0.94],
    })
    figure = plot_trial_curves(epochs, "no_bn seed 0")
    loss_axes, accuracy_axes = figure.axes
    assert figure._suptitle.get_text() == "no_bn seed 0"
    assert loss_axes.get_yscale() == "log"
    assert [line.get_label() for line in accuracy_axes.lines] == [
        "training (training mode)", "training (inference mode)", "validation"]
    assert list(accuracy_axes.lines[2].get_ydata()) == [0.85, 0.9, 0.92]
    assert list(loss_axes.lines[1].get_ydata()) == [0.45, 0.3, 0.25]


def test_trial_curves_name_a_missing_column():
    epochs = pd.DataFrame({"epoch": [1], "loss": [0.5]})
    with pytest.raises(ValueError, match=r"The epochs table is missing required columns: \['accuracy'"):
        plot_trial_curves(epochs)


def test_importing_bnlab_and_the_runner_does_not_import_mlflow():
    code = "import sys, bnlab, bnlab.runs.experiment, bnlab.runs.tracking; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "False", result.stderr


def test_tensorboard_writes_event_files_per_trial(tmp_path):
    pytest.importorskip("tensorboard")
    config = tiny(**{"tracking.tensorboard": True, "variants": ["no_bn"]})
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    trial = run_dir / "tensorboard" / "no_bn-seed0"
    for part in ("train", "validation"):
        assert list((trial / part).glob("events.out.tfevents.*")), f"no event file in {trial / part}"
    scalars = _scalars(trial / "validation")
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert scalars["epoch_accuracy"] == pytest.approx(list(epochs["val_accuracy"]), rel=1e-6)


def test_tensorboard_leaves_the_recorded_metrics_unchanged(tmp_path):
    pytest.importorskip("tensorboard")
    config = tiny()
    splits = load_splits(config, None)
    variant = config.variants[1]
    plain = train_trial(config, variant, 0, splits).epochs.drop(columns=TIMING)
    logged = train_trial(config, variant, 0, splits, log_dir=tmp_path / "tb").epochs.drop(columns=TIMING)
    pd.testing.assert_frame_equal(plain, logged, check_exact=True)
    assert list((tmp_path / "tb" / "train").glob("events.out.tfevents.*"))


def _scalars(folder) -> dict[str, list[float]]:
    """Epoch scalars of a TensorBoard event folder, by tag, in step order."""
    import tensorflow as tf

    values = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalar = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, []).append((event.step, scalar))
    return {tag: [v for _, v in sorted(pairs)] for tag, pairs in values.items()}
