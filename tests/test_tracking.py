"""Optional tracking on the tiny config: MLflow parent and child runs read back through MLflow,
TensorBoard's event files and HParams sessions read back through tensorboard."""

import contextlib
import inspect
import json
import logging
import subprocess
import sys

import pandas as pd
import pytest

import bnlab
from bnlab.config import ConfigError
from bnlab.runs.mlflow_runs import PARENT_FILE, experiment_params, trial_params
from bnlab.runs.progress import NullProgress
from bnlab.runs.tensorboard_hparams import trial_hparams
from bnlab.runs.tracking import check_tracking
from bnlab.runs.trial_curves import plot_trial_curves
from bnlab.training.trial import load_splits, train_trial

TIMING = ["train_seconds", "val_seconds", "train_eval_seconds"]
LABELS = ["no_bn", "bn_before_activation"]
PARENT = "mlflow.parentRunId"


def tiny(**overrides):
    return bnlab.load_config("tiny", {"variants": LABELS, "seeds": 1, **overrides})


def tiny_in_steps(**overrides):
    """tiny in step mode: 24 optimizer steps (1.5 epochs of 16 steps), evaluated every 8."""
    data = bnlab.load_config("tiny").to_dict()
    training = {key: value for key, value in data["training"].items() if key != "epochs" and value is not None}
    data["training"] = {**training, "steps": 24, "eval_every_steps": 8, "steps_per_execution": 8}
    return bnlab.load_config(data, {"variants": LABELS, "seeds": 1, **overrides})


@contextlib.contextmanager
def mlflow_store(folder):
    """MLflow's default store pointed at a temporary folder, as a user would with the variable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        patch.chdir(folder)  # the default artifact root is ./mlruns: keep it out of the repo
        yield


def search_runs(folder, experiment="tiny") -> pd.DataFrame:
    import mlflow

    with mlflow_store(folder):
        return mlflow.search_runs(experiment_names=[experiment]).set_index("tags.mlflow.runName")


def children(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs[f"tags.{PARENT}"].notna()]


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


def test_a_run_is_one_parent_mlflow_run_with_a_nested_run_per_trial(mlflow_run):
    run_dir, runs, _ = mlflow_run
    assert sorted(runs.index) == ["bn_before_activation-seed0", "no_bn-seed0", "run"]
    parent = runs.loc["run"]
    assert pd.isna(parent[f"tags.{PARENT}"])
    assert parent["status"] == "FINISHED"
    trials = children(runs)
    assert sorted(trials.index) == ["bn_before_activation-seed0", "no_bn-seed0"]
    assert set(trials[f"tags.{PARENT}"]) == {parent["run_id"]}
    assert set(trials["status"]) == {"FINISHED"}
    assert set(trials["tags.status"]) == {"complete"}
    assert set(runs["tags.bnlab.run_dir"]) == {str(run_dir.resolve())}
    assert json.loads((run_dir / PARENT_FILE).read_text()) == {
        f"sqlite:///{run_dir.parent / 'mlflow.db'}": parent["run_id"]}


def test_the_documented_filter_lists_a_runs_trials(mlflow_run):
    import mlflow

    run_dir, runs, _ = mlflow_run
    with mlflow_store(run_dir.parent):  # docs/USAGE.md, "MLflow and TensorBoard"
        found = mlflow.search_runs(experiment_names=["tiny"],
                                   filter_string=f"tags.mlflow.parentRunId = '{runs.loc['run', 'run_id']}'")
    assert sorted(found["tags.mlflow.runName"]) == ["bn_before_activation-seed0", "no_bn-seed0"]


def test_the_parent_run_holds_the_config(mlflow_run, tmp_path):
    run_dir, runs, client = mlflow_run
    parent = runs.loc["run"]
    assert parent["tags.bnlab.config"] == "tiny"
    assert parent["tags.mlflow.note.content"] == "Smoke test on 512 MNIST images; not a study."
    assert parent["params.name"] == "tiny"
    assert parent["params.variants"] == "['no_bn', 'bn_before_activation']"
    assert parent["params.seeds"] == "[0]"
    assert parent["params.training.batch_size"] == "32"
    assert parent["params.training.optimizer.learning_rate"] == "0.01"
    assert "params.variant" not in runs or pd.isna(parent["params.variant"])
    assert sorted(a.path for a in client.list_artifacts(parent["run_id"])) == ["config.yaml", "metadata.json"]
    copy = client.download_artifacts(parent["run_id"], "config.yaml", str(tmp_path))
    assert open(copy).read() == (run_dir / "config.yaml").read_text()


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
        for name in ("val_accuracy", "loss", "train_eval_accuracy", "train_seconds", "val_seconds"):
            history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == [1, 2]
            assert [m.value for m in history] == pytest.approx(list(expected[name]), rel=1e-12)
        assert client.get_metric_history(run_id, "epoch") == []  # the step, not a metric


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
    assert len(search_runs(run_dir.parent)) == 3


class StopAfterFirstTrial(NullProgress):
    """Ctrl-C right after the first trial is saved and logged."""

    def trial_done(self, record):
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def resumed_step_run(tmp_path_factory):
    """A step-mode run interrupted after its first trial, then resumed: (run folder, MLflow runs
    after the interruption, after the resume, a client)."""
    mlflow = pytest.importorskip("mlflow")
    config = tiny_in_steps(**{"tracking.mlflow": True, "name": "tiny_steps"})
    store = tmp_path_factory.mktemp("mlflow_steps")
    with mlflow_store(store):
        with pytest.raises(KeyboardInterrupt):
            bnlab.run_experiment(config, store / "run", progress=StopAfterFirstTrial())
        interrupted = search_runs(store, "tiny_steps")
        bnlab.run_experiment(config, store / "run")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    return store / "run", interrupted, search_runs(store, "tiny_steps"), client


def test_an_interrupted_run_leaves_its_parent_killed(resumed_step_run):
    _, interrupted, _, _ = resumed_step_run
    assert sorted(interrupted.index) == ["no_bn-seed0", "run"]
    assert interrupted.loc["run", "status"] == "KILLED"  # not RUNNING forever in MLflow's UI
    assert interrupted.loc["no_bn-seed0", "status"] == "FINISHED"


def test_resuming_adds_the_new_trials_to_the_same_parent(resumed_step_run):
    run_dir, interrupted, resumed, _ = resumed_step_run
    assert sorted(resumed.index) == ["bn_before_activation-seed0", "no_bn-seed0", "run"]
    parent = interrupted.loc["run", "run_id"]
    assert resumed.loc["run", "run_id"] == parent
    assert resumed.loc["run", "status"] == "FINISHED"
    assert set(children(resumed)[f"tags.{PARENT}"]) == {parent}
    assert len(bnlab.load_results(run_dir).metadata["sessions"]) == 2


def test_step_mode_metrics_are_at_the_optimizer_step(resumed_step_run):
    run_dir, _, runs, client = resumed_step_run
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for label in LABELS:
        expected = epochs[epochs["variant"] == label]
        assert list(expected["step"]) == [8, 16, 24]
        run_id = runs.loc[f"{label}-seed0", "run_id"]
        for name in ("val_accuracy", "loss"):
            history = sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)
            assert [m.step for m in history] == [8, 16, 24]
            assert [m.value for m in history] == pytest.approx(list(expected[name]), rel=1e-12)
        assert runs.loc[f"{label}-seed0", "params.training.steps"] == "24"


def made_up_record(label="no_bn", seed=0, status="complete"):
    """A finished trial's record, made up (no training): two epochs of 16 steps."""
    from bnlab.training.record import TrialRecord

    epochs = pd.DataFrame({
        "epoch": [1, 2], "step": [16, 32], "train_seconds": [1.0, 0.5], "val_seconds": [0.1, 0.1],
        "train_eval_seconds": [0.2, 0.2], "loss": [0.9, 0.5], "accuracy": [0.7, 0.8], "val_loss": [0.8, 0.6],
        "val_accuracy": [0.75, 0.85], "train_eval_loss": [0.85, 0.55], "train_eval_accuracy": [0.72, 0.83],
        "train_eval_examples": [512, 512],  # as every run writes since the key: not taken for an older run
    })
    summary = {"status": status, "final_val_accuracy": 0.85, "best_val_accuracy": 0.85, "final_accuracy_gap": -0.02,
               "test_accuracy": 0.84, "test_loss": 0.61, "epochs_to_0.5": 1, "epochs_to_0.97": None,
               "backend": "tensorflow"}
    targets = [{"target": 0.5, "reached": True, "epochs_to_target": 1, "seconds_to_target": 1.0, "steps_to_target": 16}]
    return TrialRecord(label, seed, epochs, summary, targets)


def saved_trial(config, run_dir, label="no_bn", seed=0, status="complete"):
    """A made-up finished trial of `config`, saved in `run_dir` as a trained one is: (variant, record)."""
    from bnlab.runs import folder

    record = made_up_record(label, seed, status)
    folder.prepare_run_folder(run_dir, config)
    folder.write_metadata(run_dir, {"status": "running"})
    folder.save_trial(run_dir, record)
    folder.rebuild_tables(run_dir, [(v.label, s) for v, s in config.trials])
    return next(v for v in config.trial_variants if v.label == label), record


def test_a_deleted_parent_run_gives_way_to_a_new_one(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from bnlab.runs.mlflow_runs import log_trial_run

    config = tiny(**{"tracking.mlflow": True})
    run_dir = tmp_path / "run"
    with mlflow_store(tmp_path):
        log_trial_run(config, run_dir, *saved_trial(config, run_dir, "no_bn"))
        first = search_runs(tmp_path).loc["run", "run_id"]
        mlflow.MlflowClient().delete_run(first)
        log_trial_run(config, run_dir, *saved_trial(config, run_dir, "bn_before_activation"))
    runs = search_runs(tmp_path)  # deleted runs are not listed; the first child stays, under the deleted parent
    assert sorted(runs.index) == ["bn_before_activation-seed0", "no_bn-seed0", "run"]
    assert runs.loc["no_bn-seed0", f"tags.{PARENT}"] == first
    second = runs.loc["run", "run_id"]
    assert second != first
    assert runs.loc["run", "status"] == "FINISHED"  # both trials of the config are in the folder
    assert runs.loc["bn_before_activation-seed0", f"tags.{PARENT}"] == second
    assert list(json.loads((run_dir / PARENT_FILE).read_text()).values()) == [second]


def test_a_failed_session_leaves_its_parent_failed_until_resumed(tmp_path):
    pytest.importorskip("mlflow")
    from bnlab.runs.mlflow_runs import log_trial_run
    from bnlab.runs.tracking import end_tracking

    config = tiny(**{"tracking.mlflow": True})
    run_dir = tmp_path / "run"
    with mlflow_store(tmp_path):
        log_trial_run(config, run_dir, *saved_trial(config, run_dir, "no_bn"))
        end_tracking(config, run_dir, "failed")
        failed = search_runs(tmp_path).loc["run", "status"]
        log_trial_run(config, run_dir, *saved_trial(config, run_dir, "bn_before_activation"))
        end_tracking(config, run_dir, "interrupted")  # after the last trial: the run stays finished
    assert failed == "FAILED"
    assert search_runs(tmp_path).loc["run", "status"] == "FINISHED"


def test_each_tracking_store_gets_its_own_parent_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from bnlab.runs.mlflow_runs import log_trial_run, read_parent_ids

    config = tiny(**{"tracking.mlflow": True})
    run_dir = tmp_path / "run"
    for store in ("a", "b"):
        (tmp_path / store).mkdir()
        with mlflow_store(tmp_path / store):
            log_trial_run(config, run_dir, *saved_trial(config, run_dir, "no_bn"))
    parents = read_parent_ids(run_dir)
    assert list(parents) == [f"sqlite:///{tmp_path / store / 'mlflow.db'}" for store in ("a", "b")]
    for store, parent in zip(("a", "b"), parents.values()):
        runs = search_runs(tmp_path / store)
        assert runs.loc["run", "run_id"] == parent
        assert runs.loc["run", "status"] == "RUNNING"  # bn_before_activation is still to train
        assert runs.loc["no_bn-seed0", f"tags.{PARENT}"] == parent


def test_experiment_params_list_the_grid():
    config = bnlab.load_config("tiny", {"grid": {"training.optimizer.learning_rate": [0.5, 2.0]}})
    params = experiment_params(config)
    assert params["grid.training.optimizer.learning_rate"] == "[0.5, 2.0]"
    assert params["variants"] == "['no_bn', 'bn_after_activation', 'bn_before_activation', 'bn_input']"
    assert params["seeds"] == "[0, 1]"


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
         'pip install -e ".[mlflow]" from a bnlab checkout, or the extra \'mlflow\' when installing a wheel'),
        ("tensorboard", "tracking.tensorboard",
         "TensorBoard logging was asked for (tracking.tensorboard / --tensorboard) but tensorboard "
         'is not installed: pip install -e ".[tensorboard]" from a bnlab checkout, or the extra '
         "'tensorboard' when installing a wheel"),
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
    assert "base_variant" not in params


def test_trial_params_carry_the_trials_grid_point():
    config = bnlab.load_config("tiny", {"grid": {"training.optimizer.learning_rate": [0.5, 2.0]}})
    variant = config.trial_variants[1]
    params = trial_params(config, variant, 0)
    assert params["variant"] == "no_bn-learning_rate2"
    assert params["base_variant"] == "no_bn"
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


# ---- TensorBoard ----------------------------------------------------------------------------

GRID = {"training.optimizer.learning_rate": [0.01, 0.1]}


def hparams_data(folder) -> dict:
    """The hparams plugin's data in one TensorBoard run folder, by tag, as the plugin parses it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    parsed = {}
    for tag, content in events.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData()
        data.ParseFromString(content)
        parsed[tag] = data
    return parsed


def final_scalars(folder) -> dict[str, tuple[int, float]]:
    """The scalars a session folder holds (not its train/validation subfolders): tag -> (step, value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {tag: (e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
            for tag in events.PluginTagToContent("scalars") for e in events.Tensors(tag)}


def hparam_values(session_start) -> dict:
    """A session's hparams as Python values (numbers come back as floats: TensorBoard stores doubles)."""
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in session_start.hparams.items()}


def test_hparams_session_holds_the_trials_values(tmp_path):
    pytest.importorskip("tensorboard")
    from bnlab.runs.tensorboard_hparams import write_trial_hparams

    config = tiny(grid=GRID, variants=["no_bn"])
    variant, record = saved_trial(config, tmp_path, "no_bn-learning_rate0.1", seed=0)
    write_trial_hparams(config, tmp_path, variant, record)
    session = tmp_path / "tensorboard" / "no_bn-learning_rate0.1-seed0"
    data = hparams_data(session)
    start = data["_hparams_/session_start_info"].session_start_info
    assert hparam_values(start) == {"variant": "no_bn-learning_rate0.1", "seed": 0.0, "base_variant": "no_bn",
                                    "training.optimizer.learning_rate": 0.1}
    assert data["_hparams_/session_end_info"].session_end_info.status == 1  # api_pb2.STATUS_SUCCESS
    scalars = final_scalars(session)
    assert sorted(scalars) == ["best_val_accuracy", "epochs_to_0.5", "final_accuracy_gap", "final_val_accuracy",
                               "test_accuracy", "test_loss"]  # epochs_to_0.97 is None: not reached
    assert scalars["test_accuracy"] == (2, pytest.approx(0.84, rel=1e-6))  # at the last epoch


def test_hparams_experiment_lists_every_hparam_and_metric(tmp_path):
    pytest.importorskip("tensorboard")
    from bnlab.runs.tensorboard_hparams import write_trial_hparams

    config = tiny(grid=GRID, **{"seeds": [3, 5]})
    write_trial_hparams(config, tmp_path, *saved_trial(config, tmp_path, "no_bn-learning_rate0.1", seed=3))
    write_trial_hparams(config, tmp_path, *saved_trial(config, tmp_path, "no_bn-learning_rate0.01", seed=5))
    root = tmp_path / "tensorboard"
    assert len(list(root.glob("events.out.tfevents.*"))) == 1  # written once, by the first trial
    experiment = hparams_data(root)["_hparams_/experiment"].experiment
    domains = {info.name: list(info.domain_discrete) for info in experiment.hparam_infos}  # Python values
    assert domains == {
        "variant": sorted(v.label for v in config.trial_variants), "seed": [3.0, 5.0],
        "base_variant": sorted(LABELS), "training.optimizer.learning_rate": [0.01, 0.1],
    }
    metrics = [(m.name.group, m.name.tag) for m in experiment.metric_infos]
    assert metrics == [("", "test_accuracy"), ("", "test_loss"), ("", "final_val_accuracy"),
                       ("", "best_val_accuracy"), ("", "final_accuracy_gap"), ("", "epochs_to_0.5"),
                       ("", "epochs_to_0.97"), ("validation", "epoch_accuracy"), ("validation", "epoch_loss")]


def test_a_diverged_trial_ends_its_session_in_failure(tmp_path):
    pytest.importorskip("tensorboard")
    from bnlab.runs.tensorboard_hparams import write_trial_hparams

    config = tiny()
    write_trial_hparams(config, tmp_path, *saved_trial(config, tmp_path, "no_bn", status="diverged"))
    data = hparams_data(tmp_path / "tensorboard" / "no_bn-seed0")
    assert data["_hparams_/session_end_info"].session_end_info.status == 2  # api_pb2.STATUS_FAILURE


def test_trial_hparams_turn_other_values_into_text():
    config = bnlab.load_config("tiny", {"grid": {"model.hidden_units": [[300, 100], [64]]}})
    hparams = trial_hparams(config.trial_variants[0], 1)
    assert hparams["model.hidden_units"] == "[300, 100]"
    assert hparams["seed"] == 1


def test_hparams_are_written_without_tensorflow(tmp_path):
    """The HParams writer needs the tensorboard package only: it works on the JAX or torch backend too."""
    pytest.importorskip("tensorboard")
    code = "\n".join([
        "import sys",
        "sys.modules['tensorflow'] = None",  # what `import tensorflow` meets where it is not installed
        "import pandas as pd",
        "import bnlab.config, bnlab.runs.tensorboard_hparams as h",
        inspect.getsource(made_up_record),
        "config = bnlab.config.load_config('tiny', {'variants': ['no_bn'], 'seeds': 1})",
        f"path = h.write_trial_hparams(config, {str(tmp_path)!r}, config.variants[0], made_up_record())",
        "print(path.parent.name, [m for m in ('tensorflow', 'keras') if sys.modules.get(m)])",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "no_bn-seed0 []", result.stderr
    assert "_hparams_/session_start_info" in hparams_data(tmp_path / "tensorboard" / "no_bn-seed0")


def test_tensorboard_writes_event_files_and_hparams_per_trial(tmp_path):
    pytest.importorskip("tensorboard")
    config = tiny(**{"tracking.tensorboard": True, "variants": ["no_bn"]})
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    trial = run_dir / "tensorboard" / "no_bn-seed0"
    for part in ("train", "validation"):
        assert list((trial / part).glob("events.out.tfevents.*")), f"no event file in {trial / part}"
    scalars = _scalars(trial / "validation")
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert scalars["epoch_accuracy"] == pytest.approx(list(epochs["val_accuracy"]), rel=1e-6)
    start = hparams_data(trial)["_hparams_/session_start_info"].session_start_info
    assert hparam_values(start) == {"variant": "no_bn", "seed": 0.0}
    trials = pd.read_csv(run_dir / "trials.csv")
    assert final_scalars(trial)["test_accuracy"] == (2, pytest.approx(trials["test_accuracy"][0], rel=1e-6))


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
