"""A grid over builder arguments (`model.ARG` keys): labels, the trial variants' overrides, the
models they build (counted parameters, no training), the checks of keys and values, and the
trials table's columns of a tiny run."""

import copy
import importlib
from pathlib import Path

import keras
import pandas as pd
import pytest

import bnlab
from bnlab.config import ConfigError, load_config
from bnlab.config.grid import grid_column, grid_label, value_text
from bnlab.models.arguments import BUILDER_ARGUMENTS

TESTS = Path(__file__).resolve().parent
BASE = {
    "name": "model_grid",
    "dataset": {"validation_size": 256, "train_subset": 512},
    "variants": ["no_bn", {"name": "bn_before_activation", "label": "bn"}],
    "seeds": 1,
    "training": {"epochs": 1, "batch_size": 64, "jit_compile": False,  # no XLA: compiling would outlast training
                 "optimizer": {"name": "sgd", "learning_rate": 0.1}},
    "targets": [0.5],
    "grid": {"model.hidden_units": [[300, 100], [1000, 1000, 1000]]},
}


def with_grid(grid, **changes):
    data = copy.deepcopy(BASE)
    data["grid"] = grid
    data.update(changes)
    return data


def problems(data):
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    return caught.value.problems


def mlp_parameters(hidden, bn_before=False, inputs=784, classes=10):
    """(total, trainable, non-trainable) of an MLP, counted from its layer sizes."""
    sizes = [inputs, *hidden]
    dense = sum(n_in * n_out + (0 if bn_before else n_out) for n_in, n_out in zip(sizes, sizes[1:]))
    dense += hidden[-1] * classes + classes
    bn = 4 * sum(hidden) if bn_before else 0  # gamma, beta (trained); moving mean, variance (not)
    return dense + bn, dense + bn // 2, bn // 2


# ---- labels and trial variants


@pytest.mark.parametrize(
    "value, text",
    [
        (0.3, "0.3"), (2, "2"), (True, "true"), ("jax", "_jax"), ([300, 100], "300-100"), ((64,), "64"),
        (["relu", "tanh"], "_relu-tanh"), ("he normal/2", "_he_normal_2"), (1e-05, "1e-05"),
        ({"class_name": "HeNormal"}, "class_nameHeNormal"),
    ],
)
def test_value_text_is_readable_and_safe_in_folder_names(value, text):
    assert value_text(value) == text


def test_grid_label_and_column_of_a_builder_argument():
    assert grid_label("no_bn", {"model.hidden_units": [300, 100]}) == "no_bn-hidden_units300-100"
    assert grid_label("bn", {"model.momentum": 0.9, "backend": "jax"}) == "bn-momentum0.9-backend_jax"
    assert grid_column("model.hidden_units") == "hidden_units"


def test_trial_variants_carry_the_grid_value_in_their_overrides():
    config = load_config(with_grid({"model.hidden_units": [[300, 100], [1000, 1000, 1000]],
                                    "model.momentum": [0.9, 0.99]}))
    labels = [variant.label for variant in config.trial_variants]
    assert labels[:4] == ["no_bn-hidden_units300-100-momentum0.9", "no_bn-hidden_units300-100-momentum0.99",
                          "no_bn-hidden_units1000-1000-1000-momentum0.9",
                          "no_bn-hidden_units1000-1000-1000-momentum0.99"]
    variant = config.trial_variants[6]
    assert (variant.label, variant.base_label, dict(variant.overrides)) == (
        "bn-hidden_units1000-1000-1000-momentum0.9", "bn", {"hidden_units": [1000, 1000, 1000], "momentum": 0.9})
    assert config.training_for(variant) == config.training  # a builder argument leaves training alone
    assert config.variants[1].overrides == {}  # the config's own variants are unchanged
    assert load_config(config.to_dict()) == config


def test_a_grid_value_replaces_the_variants_own_override():
    data = with_grid({"model.momentum": [0.9]})
    data["variants"] = [{"name": "bn_before_activation", "overrides": {"momentum": 0.5, "epsilon": 1e-5}}]
    (variant,) = load_config(data).trial_variants
    assert dict(variant.overrides) == {"momentum": 0.9, "epsilon": 1e-5}


def test_grid_over_hidden_units_builds_models_of_those_sizes():
    config = load_config(BASE)
    for variant in config.trial_variants:
        model = bnlab.build_model(variant.name, **variant.overrides)
        hidden = variant.grid_point["model.hidden_units"]
        dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert dense == [*hidden, 10], variant.label
        counts = (model.count_params(), sum(int(w.numpy().size) for w in model.trainable_weights),
                  sum(int(w.numpy().size) for w in model.non_trainable_weights))
        assert counts == mlp_parameters(hidden, bn_before=variant.base_label == "bn"), variant.label
    assert mlp_parameters([300, 100]) == (266_610, 266_610, 0)  # as test_models counts by hand
    assert mlp_parameters([1000, 1000, 1000], bn_before=True) == (2_806_010, 2_800_010, 6_000)


def test_grid_over_momentum_reaches_every_bn_layer():
    config = load_config(with_grid({"model.momentum": [0.9, 0.5]}))
    variant = config.trial_variants[3]
    model = bnlab.build_model(variant.name, **variant.overrides)
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert variant.label == "bn-momentum0.5" and [layer.momentum for layer in bn] == [0.5, 0.5]


# ---- checks of keys and values


MLP_ARGUMENTS = ", ".join(BUILDER_ARGUMENTS)


@pytest.mark.parametrize(
    "grid, expected",
    [
        ({"model.units": [3]},
         [f"grid.model.units: expected a builder argument every variant accepts, as model.ARG; variants[0] (no_bn) "
          f"accepts {MLP_ARGUMENTS}; variants[1] (bn) accepts {MLP_ARGUMENTS}, received an unknown key."]),
        ({"model.momentum": [0.9, 1.0]}, ["grid.model.momentum[1]: expected in [0, 1), received 1.0."]),
        ({"model.hidden_units": [[300, 100], [300, 0]]},
         ["grid.model.hidden_units[1]: expected a non-empty sequence of positive integers, e.g. (300, 100), "
          "received a list."]),
        ({"model.hidden_units": [[300, 100], [300, 100]]},
         ["grid.model.hidden_units: expected distinct values, received a list."]),
        ({"model.kernel_initializer": ["he normal", "he_normal"]},
         ["grid.model.kernel_initializer: expected values that differ in trial labels (they show them as "
          "_he_normal, _he_normal), received a list."]),
        ({"model.momentum": [0.9], "training.optimizer.momentum": [0.5]},
         ["grid: expected keys whose last parts differ (they name columns and trial labels), received a list."]),
        ({"training.optimizer.beta_1": [0.9]},
         ["grid.training.optimizer.beta_1: expected backend, or a training setting: training.FIELD or "
          "training.optimizer.PARAM, or a builder argument: model.ARG (allowed fields: epochs, batch_size, loss, "
          "eval_batch_size, steps_per_execution, jit_compile, deterministic, steps, eval_every_steps, save_model, "
          "weight_decay_on, reuse_compiled, fused_steps, data_order; "
          "optimizer params: learning_rate, momentum, nesterov, weight_decay), received an unknown key."]),
    ],
)
def test_grid_key_and_value_problems(grid, expected):
    assert problems(with_grid(grid)) == [f"<config>: {line}" for line in expected]


def test_activation_probe_is_checked_at_every_grid_point():
    data = with_grid({"model.hidden_units": [[300, 100], [50]]}, activation_probe={"hidden_layer": 2})
    assert problems(data) == [
        "<config>: activation_probe.hidden_layer: expected at most 1, the hidden layers of variants[0] (no_bn) with "
        "grid.model.hidden_units = [50], received 2."]


def test_claims_name_a_list_grid_value_at_their_grid_point():
    claim = {"statement": "BN is better", "source": "test", "metric": "test_accuracy", "variant": "bn",
             "baseline": "no_bn", "expect": "higher", "at": {"model.hidden_units": [1000, 1000, 1000]}}
    config = load_config({**BASE, "claims": [claim]})
    assert config.claims[0].labels() == ("bn-hidden_units1000-1000-1000", "no_bn-hidden_units1000-1000-1000")


# ---- a registered variant in a grid over builder arguments


@pytest.fixture
def models(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    module = importlib.import_module("extension_models")
    yield module
    module.unregister_added()


def test_builder_arguments_must_suit_every_variant(models):
    bnlab.register_variant("small_cnn", models.build_cnn, models.add_channel)
    data = with_grid({"model.momentum": [0.9, 0.99]}, variants=["no_bn", "small_cnn"])
    config = load_config(data)
    assert [dict(v.overrides) for v in config.trial_variants][2:] == [{"momentum": 0.9}, {"momentum": 0.99}]
    data["grid"] = {"model.hidden_units": [[300, 100]]}
    assert problems(data) == [
        "<config>: grid.model.hidden_units: expected a builder argument every variant accepts, as model.ARG; "
        "variants[1] (small_cnn) accepts filters, momentum, received an unknown key."]


# ---- the trials table of a tiny run


def test_trials_table_has_a_readable_column_per_builder_argument(tmp_path):
    data = with_grid({"model.hidden_units": [[8], [4, 4]]}, variants=["no_bn"])
    run_dir = bnlab.run_experiment(load_config(data), tmp_path / "run")
    trials = pd.read_csv(run_dir / "trials.csv")
    assert list(trials["variant"]) == ["no_bn-hidden_units8", "no_bn-hidden_units4-4"]
    assert list(trials["base_variant"]) == ["no_bn", "no_bn"]
    assert list(trials["hidden_units"]) == ["[8]", "[4, 4]"]
    assert list(trials["params_total"]) == [mlp_parameters([8])[0], mlp_parameters([4, 4])[0]]
    assert sorted(path.name for path in (run_dir / "trials").iterdir()) == [
        "no_bn-hidden_units4-4-seed0", "no_bn-hidden_units8-seed0"]
