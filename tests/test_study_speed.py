"""Study speed (#20) without other numbers: the inference passes, the training-set subset, compiled models
reused across trials and the early stop on divergence each leave a trial's figures as they were."""

import dataclasses
import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_scripts import BACKENDS, run_script

import bnlab
from bnlab.models.variants import get_variant
from bnlab.training import trial
from bnlab.training.compiled import CompiledModels, model_kind
from bnlab.training.inference import predict_padded, score, score_test, train_eval_subset
from bnlab.training.inputs import trial_inputs

SCRIPT = Path(__file__).parent / "scripts" / "reuse_backend.py"
COMPARED = ["step", "loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy"]


@pytest.fixture(scope="module")
def trained():
    """A BN model trained one epoch on 512 images with the trial's settings, and 300 validation images."""
    config = bnlab.load_config("tiny", {"variants": ["bn_before_activation"]})
    splits = trial.load_splits(config)
    keras.utils.set_random_seed(0)
    model = bnlab.build_model("bn_before_activation")
    trial._compile(model, trial._optimizer(config.training.optimizer), config.training)
    x = bnlab.preprocess_input("bn_before_activation", splits.x_train)
    model.fit(x, splits.y_train, batch_size=32, epochs=1, verbose=0)
    return model, x[:300], splits.y_train[:300]


@pytest.mark.parametrize("batch_size", [64, 100, 300, 1024])  # 300 = 4 x 64 + 44 padded rows, 3 x 100, 1, 1
def test_the_padded_inference_pass_scores_like_keras(trained, batch_size):
    model, x, y = trained
    keras_scores = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    ours = score(model, x, y, batch_size)
    assert ours["accuracy"] == pytest.approx(keras_scores["accuracy"], abs=1e-7)
    assert ours["loss"] == pytest.approx(keras_scores["loss"], rel=2e-6)  # float32 sums in another order
    np.testing.assert_allclose(predict_padded(model, x, batch_size), model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)
    test, predictions = score_test(model, x, y, batch_size)
    assert test == ours
    np.testing.assert_array_equal(predictions.predicted, np.argmax(model.predict(x, verbose=0), axis=1))
    np.testing.assert_array_equal(predictions.labels, y)


def test_train_eval_subset_is_the_seeds_own():
    labels = np.zeros(1000)
    first, again, other = (train_eval_subset(labels, 100, seed) for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert len(first) == len(set(first)) == 100 and (np.diff(first) > 0).all() and first.max() < 1000
    assert len(np.intersect1d(first, other)) < 40  # two draws of 100 out of 1,000 share about 10
    assert train_eval_subset(labels, None, 0) is None and train_eval_subset(labels, 1000, 0) is None


def test_the_subset_changes_only_the_inference_figures_before_the_last():
    cut = {"variants": ["bn_before_activation"], "training.epochs": 3}
    subset = bnlab.load_config("tiny", {**cut, "evaluation": {"train_eval_examples": 64}})
    whole = bnlab.load_config("tiny", {**cut, "evaluation": {"train_eval_examples": None}})
    splits = trial.load_splits(whole)
    with_subset, without = (trial.train_trial(config, config.variants[0], 0, splits).epochs
                            for config in (subset, whole))
    assert list(with_subset["train_eval_examples"]) == [64, 64, 512]
    assert list(without["train_eval_examples"]) == [512, 512, 512]
    unchanged = ["step", "loss", "accuracy", "val_loss", "val_accuracy"]
    np.testing.assert_array_equal(with_subset[unchanged], without[unchanged])
    np.testing.assert_array_equal(with_subset[COMPARED].iloc[-1], without[COMPARED].iloc[-1])  # the final figures
    assert (with_subset["train_eval_loss"].iloc[:2] != without["train_eval_loss"].iloc[:2]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reused_compiled_model_trains_exactly_like_a_fresh_one(backend):
    results = _script().collect() if backend == keras.backend.backend() else run_script(SCRIPT, backend)
    assert results["backend"] == backend
    for kept, label in enumerate(("bn_before_activation", "noisy_bn_before_activation"), start=1):
        fresh, reused = results[label]["fresh"], results[label]["reused"]
        assert results[label]["same_model"] and results[label]["kept_models"] == kept  # one model per kind
        assert reused == fresh  # every figure, bit for bit
        assert len(fresh["epochs"]) == 2 and np.isfinite(fresh["test_loss"])


def test_compiled_models_are_kept_by_kind_within_their_parameter_budget():
    models = CompiledModels(max_parameters=600_000)
    compiled = []

    def compile_model(model, optimizer):
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        compiled.append(model)

    first = models.take("a", bnlab.build_model("no_bn"), keras.optimizers.SGD(0.1), compile_model)
    second = models.take("a", bnlab.build_model("no_bn"), keras.optimizers.SGD(0.2), compile_model)
    assert second is first and len(compiled) == 1
    assert float(keras.ops.convert_to_numpy(first.optimizer.learning_rate)) == pytest.approx(0.2)
    models.take("b", bnlab.build_model("bn_input"), keras.optimizers.SGD(0.1), compile_model)
    models.take("c", bnlab.build_model("no_bn"), keras.optimizers.SGD(0.1), compile_model)  # 3 x 266,610 > 600,000
    assert list(models.models) == ["b", "c"] and len(compiled) == 3
    other = models.take("c", bnlab.build_model("no_bn", hidden_units=(30,)), keras.optimizers.SGD(0.1), compile_model)
    assert other is compiled[-1] and len(compiled) == 4  # another architecture under the same kind: compiled anew


def test_divergence_stops_within_one_execution_and_keeps_its_row():
    cut = {"variants": ["no_bn"], "training.epochs": 3, "training.optimizer.learning_rate": 1000.0,
           "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 4096}}
    by_step, by_execution = (bnlab.load_config("tiny", {**cut, "training.steps_per_execution": steps})
                             for steps in (1, 16))
    splits = trial.load_splits(by_step)
    first_nan = trial.train_trial(by_step, by_step.variants[0], 0, splits)  # stops at the first non-finite step
    stopped = trial.train_trial(by_execution, by_execution.variants[0], 0, splits)
    for record in (first_nan, stopped):
        assert record.summary["status"] == "diverged" and record.summary["diverged_epoch"] == 1
        assert len(record.epochs) == 1 and not np.isfinite(record.epochs["loss"].iloc[0])
    nan_step, stop_step = first_nan.epochs["step"].iloc[0], stopped.epochs["step"].iloc[0]
    assert nan_step < 4096 // 32  # it diverged inside the first epoch, so the stop is a real early stop
    assert nan_step <= stop_step < nan_step + 16 and stop_step % 16 == 0


def test_reuse_is_keyed_on_everything_but_the_learning_rate():
    config = bnlab.load_config("tiny")
    model = bnlab.build_model("no_bn")
    kind = model_kind(model, "no_bn", {}, config.training, "tensorflow")
    def training(**params):
        optimizer = config.training.optimizer
        return dataclasses.replace(config.training, optimizer=dataclasses.replace(
            optimizer, params={**optimizer.params, **params}))

    assert model_kind(model, "no_bn", {}, training(learning_rate=0.5), "tensorflow") == kind
    assert model_kind(model, "no_bn", {}, training(momentum=0.9), "tensorflow") != kind
    assert model_kind(model, "no_bn", {}, config.training, "jax") != kind
    narrow = bnlab.build_model("no_bn", hidden_units=(30,))
    assert model_kind(narrow, "no_bn", {}, config.training, "tensorflow") != kind


def _script():
    spec = importlib.util.spec_from_file_location("reuse_backend", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trials_that_preprocess_alike_share_their_inputs():
    splits = trial.load_splits(bnlab.load_config("tiny"))
    variants = {name: get_variant(name) for name in ("no_bn", "bn_before_activation", "bn_input")}
    first = trial_inputs(variants["no_bn"], splits)
    assert trial_inputs(variants["bn_before_activation"], splits) is first  # both divide pixels by 255
    raw = trial_inputs(variants["bn_input"], splits)  # BN on the raw pixels: its own inputs, the others let go
    assert raw is not first and raw.x_train.max() == 255 and first.x_train.max() == 1
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(raw.fit_x), raw.x_train)
    np.testing.assert_array_equal(raw.x_test, splits.x_test.astype("float32"))


def test_fitting_the_kept_tensor_is_fitting_the_array():
    splits = trial.load_splits(bnlab.load_config("tiny"))
    x = bnlab.preprocess_input("bn_before_activation", splits.x_train)
    weights = []
    for data in (x, keras.ops.convert_to_tensor(x)):
        keras.utils.set_random_seed(3)
        model = bnlab.build_model("bn_before_activation")
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                      steps_per_execution=4)
        model.fit(data, splits.y_train, batch_size=32, epochs=2, verbose=0)  # shuffled: the same order both times
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    for array_fitted, tensor_fitted in zip(*weights):
        np.testing.assert_array_equal(array_fitted, tensor_fitted)
