"""Config features for studies: step mode, the grid axis, the activation probe, binarized input."""

import copy

import pytest
import yaml

from bnlab.config import ConfigError, load_config

BASE = {
    "name": "study",
    "dataset": {"validation": "test", "binarize": True},
    "variants": ["no_bn", {"name": "bn_before_activation", "label": "bn"}],
    "seeds": 2,
    "training": {"steps": 2000, "eval_every_steps": 500, "steps_per_execution": 100, "batch_size": 60,
                 "optimizer": {"name": "sgd", "learning_rate": 0.5}},
    "targets": [0.95],
}


def load(tmp_path, changes=None, data=BASE):
    data = copy.deepcopy(data)
    for dotted, value in (changes or {}).items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_config(path), path


def problems(tmp_path, changes):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, changes)
    return [line.split(": ", 1)[1] for line in caught.value.problems]


# ---- step mode


def test_step_mode_counts_evaluations_and_fit_epochs(tmp_path):
    config, _ = load(tmp_path)
    training = config.training
    assert training.step_mode and training.epochs is None
    assert training.evaluations == 4
    assert training.steps_per_epoch(config.dataset.train_images) == 1000  # 60,000 images / 60
    assert training.fit_epochs(config.dataset.train_images) == 2
    assert config.dataset.binarize is True


def test_epoch_mode_is_unchanged(tmp_path):
    config, _ = load(tmp_path, {"training.steps": None, "training.eval_every_steps": None, "training.epochs": 3})
    assert not config.training.step_mode
    assert config.training.evaluations == 3
    assert config.training.fit_epochs(60000) == 3


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"training.epochs": 4}, ["training.epochs: expected no epochs when training.steps is given (a trial "
                                  "runs either for epochs or for steps), received 4."]),
        ({"training.eval_every_steps": None}, ["training.eval_every_steps: expected a positive integer "
                                               "(with steps: step mode); the key is missing."]),
        ({"training.steps": 2100}, ["training.steps: expected a multiple of training.eval_every_steps (500), "
                                    "received 2100."]),
        ({"training.steps_per_execution": 64}, [
            "training.steps_per_execution: expected in step mode, a divisor of both training.eval_every_steps "
            "(500) and the steps in an epoch (1000), so that evaluations fall exactly every 500 steps; the "
            "largest is 500, received 64."]),
        ({"training.steps": None, "training.eval_every_steps": None},
         ["training.epochs: expected a positive integer (or training.steps with training.eval_every_steps); "
          "the key is missing."]),
        ({"dataset.binarize": "yes"}, ["dataset.binarize: expected true or false, received the string 'yes'."]),
    ],
)
def test_step_mode_problems(tmp_path, changes, expected):
    assert problems(tmp_path, changes) == expected


def test_step_config_round_trips_through_to_dict(tmp_path):
    config, _ = load(tmp_path, {"grid": {"training.optimizer.learning_rate": [0.1, 1.0]},
                                "activation_probe": {"hidden_layer": 2, "units": [0, 5]}})
    again = load_config(config.to_dict())
    assert again == config
    assert "epochs" not in config.to_dict()["training"]


# ---- the grid axis


def test_grid_expands_into_one_trial_per_variant_point_and_seed(tmp_path):
    config, _ = load(tmp_path, {"grid": {"training.optimizer.learning_rate": [0.01, 0.3, 2]}})
    labels = [(v.label, seed) for v, seed in config.trials]
    assert labels[:6] == [
        ("no_bn-learning_rate0.01", 0), ("no_bn-learning_rate0.3", 0), ("no_bn-learning_rate2", 0),
        ("bn-learning_rate0.01", 0), ("bn-learning_rate0.3", 0), ("bn-learning_rate2", 0),
    ]
    assert len(labels) == 2 * 3 * 2
    variant = config.trial_variants[4]
    assert (variant.name, variant.base_label, dict(variant.grid_point)) == (
        "bn_before_activation", "bn", {"training.optimizer.learning_rate": 0.3})
    assert config.training_for(variant).optimizer.params == {"learning_rate": 0.3}
    assert config.training.optimizer.params == {"learning_rate": 0.5}  # the config itself is unchanged


def test_two_grid_axes_form_their_product(tmp_path):
    config, _ = load(tmp_path, {"grid": {"training.optimizer.learning_rate": [0.1, 1.0],
                                         "training.batch_size": [50, 100]}})
    first = [v for v in config.trial_variants if v.base_label == "no_bn"]
    assert [v.label for v in first] == ["no_bn-learning_rate0.1-batch_size50", "no_bn-learning_rate0.1-batch_size100",
                                        "no_bn-learning_rate1-batch_size50", "no_bn-learning_rate1-batch_size100"]
    assert [config.training_for(v).batch_size for v in first] == [50, 100, 50, 100]


def test_no_grid_means_the_declared_variants(tmp_path):
    config, _ = load(tmp_path)
    assert config.trial_variants == config.variants
    assert config.grid_points == [{}]


@pytest.mark.parametrize(
    "grid, expected",
    [
        ({"training.optimizer.beta_1": [0.9]},
         "grid.training.optimizer.beta_1: expected backend, or a training setting"),
        ({"dataset.validation_size": [10]}, "grid.dataset.validation_size: expected backend, or a training setting"),
        ({"backend": ["tensorflow", "tf"]},
         "grid.backend[1]: expected one of tensorflow, jax, torch, received the string 'tf'."),
        ({"training.optimizer.learning_rate": []},
         "grid.training.optimizer.learning_rate: expected a non-empty list of values, received a list."),
        ({"training.optimizer.learning_rate": 0.1},
         "grid.training.optimizer.learning_rate: expected a non-empty list of values, received 0.1."),
        ({"training.optimizer.learning_rate": [0.1, 0.1]},
         "grid.training.optimizer.learning_rate: expected distinct values"),
        ({"training.optimizer.learning_rate": [0.1, -1]},
         "grid.training.optimizer.learning_rate[1]: expected a positive number, received -1."),
        ({"training.batch_size": [60, 0]}, "grid.training.batch_size[1]: expected a positive integer, received 0."),
        # a grid value is also checked against the rest of the config (here: step-mode counts)
        ({"training.batch_size": [60, 64]}, "training.steps_per_execution: expected in step mode, a divisor"),
    ],
)
def test_grid_problems_name_the_value(tmp_path, grid, expected):
    lines = problems(tmp_path, {"grid": grid})
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_grid_value_problem_says_which_value(tmp_path):
    lines = problems(tmp_path, {"grid": {"training.batch_size": [60, 64]}})
    assert lines[0].endswith("(with grid.training.batch_size[1] = 64).")


# ---- the activation probe


def test_activation_probe_defaults(tmp_path):
    config, _ = load(tmp_path, {"activation_probe": {"hidden_layer": 2}})
    probe = config.activation_probe
    assert (probe.hidden_layer, probe.units, probe.probe_examples, probe.percentiles) == (
        2, tuple(range(10)), 1000, (15.0, 50.0, 85.0))


@pytest.mark.parametrize(
    "probe, expected",
    [
        ({"hidden_layer": 3},
         "activation_probe.hidden_layer: expected at most 2, the hidden layers of variants[0] (no_bn), received 3."),
        ({"hidden_layer": 2, "units": [99, 100]},
         "activation_probe.units: expected unit indices below 100, the width of hidden layer 2 of variants[0] (no_bn), "
         "received 100."),
        ({"hidden_layer": 0},
         "activation_probe.hidden_layer: expected a positive integer: 1 for the first hidden layer, received 0."),
        ({"hidden_layer": 1, "percentiles": [15, 101]},
         "activation_probe.percentiles: expected a non-empty list of numbers from 0 to 100, received a list."),
        ({"hidden_layer": 1, "layer": "x"},
         "activation_probe.layer: expected no such key; allowed here: hidden_layer, units, probe_examples, "
         "percentiles, received an unknown key."),
    ],
)
def test_activation_probe_problems(tmp_path, probe, expected):
    assert problems(tmp_path, {"activation_probe": probe}) == [expected]


def test_activation_probe_follows_the_variants_overrides(tmp_path):
    variants = [{"name": n, "overrides": {"hidden_units": [100, 100, 100]}} for n in ("no_bn", "bn_before_activation")]
    config, _ = load(tmp_path, {"variants": variants, "activation_probe": {"hidden_layer": 3, "units": [99]}})
    assert config.activation_probe.hidden_layer == 3


def test_backend_grid_labels_and_leaves_training_alone(tmp_path):
    config, _ = load(tmp_path, {"grid": {"backend": ["tensorflow", "jax"]}})
    variant = config.trial_variants[1]
    assert variant.label == "no_bn-backend_jax"
    assert config.backend_for(variant) == "jax"
    assert config.training_for(variant) == config.training


def test_backend_grid_and_a_fixed_backend_conflict(tmp_path):
    assert problems(tmp_path, {"backend": "jax", "grid": {"backend": ["tensorflow", "jax"]}}) == [
        "backend: expected null when grid.backend lists the backends (each trial runs on its own), "
        "received the string 'jax'."]
