"""Every normalizer of the table, in every placement and on the input; its options reach its layers;
bad normalizer settings are one clear error, from the builder and from a config before any training."""

import keras
import numpy as np
import pytest

import bnlab
from bnlab.models.builders import build_mlp
from bnlab.models.normalizers import NORMALIZERS, divisors, list_normalizers

# The layer class each normalizer puts in a hidden block (None: no layer of its own).
LAYER_CLASS = {"batch": "BatchNormalization", "ghost": "GhostBatchNormalization", "renorm": "BatchRenormalization",
               "noisy": "NoisyBatchNormalization",
               "layer": "LayerNormalization", "group": "GroupNormalization", "weight": None, "none": None}
SMALL = {"hidden_units": (8, 6), "groups": 2, "virtual_batch_size": 4}


def test_every_normalizer_has_expectations():
    assert sorted(LAYER_CLASS) == sorted(list_normalizers())


@pytest.mark.parametrize("normalization", list_normalizers())
def test_before_activation_layers(normalization):
    model = build_mlp(batch_norm="before_activation", normalization=normalization, **SMALL)
    names = [type(layer).__name__ for layer in model.layers]
    layer = LAYER_CLASS[normalization]
    if normalization == "weight":
        assert names == ["Flatten", "WeightNormDense", "WeightNormDense", "Dense"]
    elif layer is None:
        assert names == ["Flatten", "Dense", "Dense", "Dense"]
    else:
        assert names == ["Flatten", "Dense", layer, "Activation", "Dense", layer, "Activation", "Dense"]
        suffix = NORMALIZERS[normalization].suffix
        assert model.get_layer(f"hidden_1_{suffix}").name == f"hidden_1_{suffix}"
        assert model.get_layer("hidden_1").use_bias is False  # the normalizer's beta replaces the bias


@pytest.mark.parametrize("normalization", [n for n in list_normalizers() if LAYER_CLASS[n]])
def test_after_activation_layers(normalization):
    model = build_mlp(batch_norm="after_activation", normalization=normalization, **SMALL)
    layer = LAYER_CLASS[normalization]
    assert [type(item).__name__ for item in model.layers] == ["Flatten", "Dense", layer, "Dense", layer, "Dense"]
    assert model.get_layer("hidden_1").use_bias is True


@pytest.mark.parametrize("normalization", [n for n in list_normalizers() if LAYER_CLASS[n]])
def test_input_position(normalization):
    model = build_mlp(input_normalization="batch_norm", normalization=normalization, **{**SMALL, "groups": 4})
    assert type(model.layers[1]).__name__ == LAYER_CLASS[normalization]
    assert model.layers[1].name == f"input_{NORMALIZERS[normalization].suffix}"
    assert [type(item).__name__ for item in model.layers[2:]] == ["Dense", "Dense", "Dense"]


def test_weight_normalization_has_no_input_position():
    with pytest.raises(ValueError, match=r"build_mlp: input_normalization must be 'none' with normalization "
                                         r"'weight'.*received 'batch_norm'\."):
        build_mlp(input_normalization="batch_norm", normalization="weight")


def test_normalization_none_removes_every_layer():
    model = build_mlp(batch_norm="before_activation", input_normalization="batch_norm", normalization="none")
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]


def test_options_reach_their_layers():
    ghost = build_mlp(batch_norm="before_activation", normalization="ghost", virtual_batch_size=8, momentum=0.9,
                      epsilon=1e-5)
    assert [(layer.virtual_batch_size, layer.momentum, layer.epsilon) for layer in ghost.layers
            if type(layer).__name__ == "GhostBatchNormalization"] == [(8, 0.9, 1e-5)] * 2
    renorm = build_mlp(batch_norm="after_activation", normalization="renorm", renorm_r_max=2.0, renorm_d_max=1.0,
                       renorm_warmup_steps=10, renorm_r_max_steps=30, renorm_d_max_steps=20)
    config = renorm.get_layer("hidden_2_renorm").get_config()
    assert {key: config[key] for key in ("r_max", "d_max", "warmup_steps", "r_max_steps", "d_max_steps")} == {
        "r_max": 2.0, "d_max": 1.0, "warmup_steps": 10, "r_max_steps": 30, "d_max_steps": 20}
    group = build_mlp(batch_norm="before_activation", normalization="group", groups=25)
    assert [group.get_layer(f"hidden_{i}_gn").groups for i in (1, 2)] == [25, 25]


def test_ghost_over_the_whole_batch_is_keras_batch_normalization():
    # an independent check of the ghost layer inside a model: g = B trains exactly like Keras BN
    images = np.random.default_rng(0).random((32, 28, 28), dtype=np.float32)
    outputs = []
    whole_batch = {"virtual_batch_size": 32}
    for variant, overrides in (("bn_before_activation", {}), ("ghost_bn_before_activation", whole_batch)):
        keras.utils.set_random_seed(1)
        model = bnlab.build_model(variant, **overrides)
        outputs.append(keras.ops.convert_to_numpy(model(images, training=True)))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    ({"normalization": "batchy"},
     r"normalization must be one of 'batch', 'ghost', 'renorm', 'noisy', 'layer', 'group', 'weight', 'none'; "
     r"received 'batchy'\."),
    ({"batch_norm": "before_activation", "normalization": "group", "groups": 7},
     r"groups must be a number of groups that divides every normalized width \(hidden_1 300, hidden_2 100\): "
     r"one of 1, 2, 4, 5, 10, 20, 25, 50, 100; received 7\."),
    ({"input_normalization": "batch_norm", "normalization": "group", "groups": 10},
     r"\(input 784\): one of 1, 2, 4, 7, 8, 14, 16, 28, 49, 56, 98, 112, 196, 392, 784; received 10\."),
    ({"normalization": "ghost", "virtual_batch_size": 0}, r"virtual_batch_size must be null or a positive integer"),
    ({"normalization": "renorm", "renorm_r_max": 0.5}, r"renorm_r_max must be a number of at least 1"),
    ({"normalization": "renorm", "renorm_warmup_steps": 100, "renorm_r_max_steps": 50},
     r"renorm_r_max_steps must be at least renorm_warmup_steps \(100\).*received 50\."),
])
def test_bad_normalizer_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_mlp(**arguments)


def test_divisors():
    assert divisors(12) == [1, 2, 3, 4, 6, 12] and divisors(1) == [1]


def _config(variant, grid=None):
    return {"name": "bad", "variants": [variant], "seeds": 1, "targets": [0.9], "grid": grid or {},
            "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
            "training": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.01}}}


@pytest.mark.parametrize("config, line", [
    (_config({"name": "bn_before_activation", "overrides": {"normalization": "ghosty"}}),
     "<config>: variants[0].overrides.normalization: expected one of 'batch', 'ghost', 'renorm', 'noisy', 'layer', "
     "'group', 'weight', 'none', received the string 'ghosty'."),
    (_config("group_norm_before_activation", {"model.groups": [10, 3]}),
     "<config>: grid.model.groups: expected a number of groups that divides every normalized width (hidden_1 300, "
     "hidden_2 100): one of 1, 2, 4, 5, 10, 20, 25, 50, 100 (variants[0], group_norm_before_activation), "
     "received 3."),
    (_config({"name": "ghost_bn_before_activation", "overrides": {"virtual_batch_size": 12}}),
     "<config>: variants[0].overrides.virtual_batch_size: expected a divisor of training.batch_size (32), so that "
     "every full batch splits into whole normalization batches: one of 1, 2, 4, 8, 16, 32 (variants[0], "
     "ghost_bn_before_activation), received 12."),
])
def test_bad_normalizer_settings_are_one_config_error(config, line):
    with pytest.raises(bnlab.ConfigError) as raised:
        bnlab.load_config(config)
    assert str(raised.value).splitlines() == [line]


def test_a_training_batch_that_the_variants_virtual_batch_does_not_divide():
    config = _config("ghost_bn_before_activation", {"training.batch_size": [32, 24]})
    with pytest.raises(bnlab.ConfigError, match=r"variants\[0\]: expected virtual_batch_size a divisor of "
                                                r"training.batch_size \(24\).*received 16\."):
        bnlab.load_config(config)
