"""Config loading: valid files become frozen dataclasses; every bad value gets its own line."""

import copy
import dataclasses

import pytest
import yaml

from bnlab.config import ConfigError, ExperimentConfig, list_configs, load_config

VALID = {
    "name": "example",
    "description": "a test config",
    "dataset": {"validation": "holdout", "validation_size": 1000, "train_subset": 2000},
    "variants": ["no_bn", {"name": "bn_before_activation", "label": "wide", "overrides": {"hidden_units": [512, 256]}}],
    "seeds": [3, 1],
    "training": {"epochs": 3, "batch_size": 64, "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}},
    "targets": [0.98, 0.97],
}


def _write(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _changed(dotted, value):
    data = copy.deepcopy(VALID)
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DELETE = object()


def test_valid_config_is_parsed(tmp_path):
    config = load_config(_write(tmp_path, VALID))
    assert isinstance(config, ExperimentConfig)
    assert config.seeds == (3, 1)
    assert config.targets == (0.97, 0.98)
    assert [(v.name, v.label) for v in config.variants] == [("no_bn", "no_bn"), ("bn_before_activation", "wide")]
    assert config.variants[1].overrides == {"hidden_units": [512, 256]}
    assert config.training.optimizer.params == {"learning_rate": 0.1, "momentum": 0.9}
    assert config.dataset.train_images == 2000
    assert config.output_dir == "runs/example"
    assert [(v.label, s) for v, s in config.trials] == [("no_bn", 3), ("wide", 3), ("no_bn", 1), ("wide", 1)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"


def test_seed_count_and_defaults(tmp_path):
    data = _changed("seeds", 3)
    del data["dataset"]
    config = load_config(_write(tmp_path, data))
    assert config.seeds == (0, 1, 2)
    assert config.dataset.validation_size == 5000
    assert config.dataset.train_images == 55000
    assert config.training.steps_per_execution == 64


def test_round_trip_through_to_dict(tmp_path):
    config = load_config(_write(tmp_path, VALID))
    assert load_config(config.to_dict()) == config


def test_overrides_replace_values(tmp_path):
    config = load_config(_write(tmp_path, VALID), {"training.epochs": 7, "seeds": 2, "output_dir": "elsewhere"})
    assert (config.training.epochs, config.seeds, config.output_dir) == (7, (0, 1), "elsewhere")


def test_bad_override_is_reported_as_command_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, VALID), {"training.epochs": 0})
    assert caught.value.problems == ["command line: training.epochs: expected a positive integer, received 0."]


@pytest.mark.parametrize(
    "dotted, value, message",
    [
        ("colour", "red", "colour: expected no such key; allowed here: name, description"),
        ("dataset.shuffle", True, "dataset.shuffle: expected no such key; allowed here: validation, validation_size"),
        ("training.momentum", 0.9, "training.momentum: expected no such key; allowed here: epochs, batch_size"),
        ("training.optimizer.beta_1", 0.9,
         "training.optimizer.beta_1: expected no such key; allowed here: name, learning_rate, momentum, nesterov, "
         "weight_decay"),
        ("name", _DELETE, "name: expected a non-empty string; the key is missing."),
        ("name", "", "name: expected a non-empty string, received the string ''."),
        ("dataset.validation", "train",
         "dataset.validation: expected one of holdout, test, received the string 'train'."),
        ("dataset.validation_size", 0, "dataset.validation_size: expected an integer from 1 to 59999, received 0."),
        ("dataset.train_subset", "all",
         "dataset.train_subset: expected null or an integer from 1 to 59999, received the string 'all'."),
        ("dataset.train_subset", 59500,
         "dataset.train_subset: expected at most the 59000 training images left after the validation hold-out, "
         "received 59500."),
        ("variants", [], "variants: expected a non-empty list of variant names"),
        ("variants", "no_bn", "variants: expected a non-empty list of variant names"),
        ("variants", ["bn_befor"],
         "variants[0].name: expected one of bn_after_activation, bn_before_activation, bn_input, "
         "bn_input_scaled, ghost_bn_before_activation, group_norm_before_activation, "
         "layer_norm_before_activation, no_bn, noisy_bn_before_activation, renorm_before_activation, weight_norm, "
         "received the string "
         "'bn_befor'."),
        ("variants", [{"label": "x"}], "variants[0].name: expected one of bn_after_activation"),
        ("variants", ["no_bn", "no_bn"],
         "variants: expected distinct labels (give repeated variants a label), received 'no_bn' more than once."),
        ("variants", [{"name": "no_bn", "label": "a b"}], "variants[0].label: expected a label of letters, digits"),
        ("variants", [{"name": "no_bn", "overrides": {"units": 3}}],
         "variants[0].overrides.units: expected no such key; allowed here: hidden_units"),
        ("variants", [{"name": "no_bn", "colour": 1}],
         "variants[0].colour: expected no such key; allowed here: name, label, overrides"),
        ("seeds", 0,
         "seeds: expected a positive count of seeds (0, 1, ...) or a non-empty list of distinct integers, received 0."),
        ("seeds", [], "seeds: expected a positive count of seeds"),
        ("seeds", [1, 2, 1], "seeds: expected distinct seeds, received 1 more than once."),
        ("seeds", [0, -1],
         "seeds: expected a positive count of seeds (0, 1, ...) or a non-empty list of distinct integers, "
         "received a list."),
        ("seeds", True, "seeds: expected a positive count"),
        ("training", _DELETE, "training: expected a mapping with keys epochs, batch_size"),
        ("training", [1],
         "training: expected a mapping with keys epochs, batch_size, optimizer, loss, eval_batch_size, "
         "steps_per_execution, jit_compile, deterministic, steps, eval_every_steps, save_model, weight_decay_on, "
         "reuse_compiled, fused_steps, data_order, "
         "received a list."),
        ("training.epochs", -1, "training.epochs: expected a positive integer, received -1."),
        ("training.epochs", 2.5, "training.epochs: expected a positive integer, received 2.5."),
        ("training.epochs", "10", "training.epochs: expected a positive integer, received the string '10'."),
        ("training.batch_size", 0, "training.batch_size: expected a positive integer, received 0."),
        ("training.batch_size", 4000, "training.batch_size: expected at most the 2000 training images, received 4000."),
        ("training.loss", "mse",
         "training.loss: expected one of sparse_categorical_crossentropy, received the string 'mse'."),
        ("training.optimizer", _DELETE,
         "training.optimizer: expected a mapping with name and learning_rate; the key is missing."),
        ("training.optimizer.name", "adamax",
         "training.optimizer.name: expected one of sgd, adam, adamw, rmsprop, adagrad, nadam, "
         "received the string 'adamax'."),
        ("training.optimizer.learning_rate", 0,
         "training.optimizer.learning_rate: expected a positive number, received 0."),
        ("training.optimizer.learning_rate", -0.1,
         "training.optimizer.learning_rate: expected a positive number, received -0.1."),
        ("training.optimizer.learning_rate", _DELETE,
         "training.optimizer.learning_rate: expected a positive number; the key is missing."),
        ("training.optimizer.momentum", 1.5, "training.optimizer.momentum: expected a number in [0, 1), received 1.5."),
        ("training.jit_compile", "yes", "training.jit_compile: expected true or false, received the string 'yes'."),
        ("targets", [], "targets: expected a non-empty list of validation accuracies in (0, 1]"),
        ("targets", [0.97, 1.5], "targets[1]: expected a number in (0, 1], received 1.5."),
        ("targets", [0], "targets[0]: expected a number in (0, 1], received 0."),
        ("targets", [0.97, 0.97], "targets: expected distinct targets, received a list."),
        ("output_dir", "", "output_dir: expected a folder path, received the string ''."),
    ],
)
def test_each_bad_value_gets_its_own_line(tmp_path, dotted, value, message):
    path = _write(tmp_path, _changed(dotted, value))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(f"{path}: {message}")


def test_several_problems_are_all_reported(tmp_path):
    data = _changed("training.epochs", 0)
    data["seeds"] = [1, 1]
    data["extra"] = 1
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, data))
    keys = [line.split(": ")[1] for line in caught.value.problems]
    assert sorted(keys) == ["extra", "seeds", "training.epochs"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty; expected a mapping of experiment settings."),
        ("- a\n- b\n", "expected a mapping of experiment settings at the top level, received a list."),
        ("name: [unclosed\n", "invalid YAML at line 2, column 1"),
        ("just text", "expected a mapping of experiment settings at the top level, received the string 'just text'."),
    ],
)
def test_unusable_files(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file_directory_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="expected a YAML config file, received a directory"):
        load_config(folder)
    with pytest.raises(ConfigError, match="unknown config name; expected one of .*tiny, train_at_lr1, weight_decay"):
        load_config("quikstart")


@pytest.mark.parametrize("name", list_configs())
def test_shipped_configs_are_valid(name):
    config = load_config(name)
    assert config.name == name
    assert config.description


def test_with_variants_selects_by_label_or_registry_name(tmp_path):
    config = load_config(_write(tmp_path, VALID))
    chosen = config.with_variants(["wide", "bn_input"])
    assert [(v.name, v.label) for v in chosen.variants] == [("bn_before_activation", "wide"), ("bn_input", "bn_input")]
    with pytest.raises(ConfigError, match="--variants: expected labels among no_bn, wide, .*received bogus"):
        config.with_variants(["bogus"])
