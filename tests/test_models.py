"""Every registered variant: layer order, biases, parameter counts, save/load, overrides."""

import inspect
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import bnlab
from bnlab.models.arguments import BUILDER_DEFAULTS
from bnlab.models.builders import build_mlp, build_model, nonlinearity_layer
from bnlab.models.variants import BUILDER_ARGUMENTS, MLP_BUILDER

VARIANTS = bnlab.list_variants()

# Hand-computed for 784-300-100-10. Dense(n_in, n_out): n_in*n_out weights (+ n_out biases).
# BatchNormalization(n): gamma, beta trainable; moving mean, moving variance not (2n each).
DENSE_784_300 = 784 * 300 + 300  # 235,500
DENSE_300_100 = 300 * 100 + 100  # 30,100
DENSE_100_10 = 100 * 10 + 10  # 1,010
EXPECTED = {
    "no_bn": {
        "layers": ["Flatten", "Dense", "Dense", "Dense"],
        "use_bias": [True, True, True],
        "params": (266_610, 266_610, 0),
    },
    "bn_after_activation": {
        "layers": [
            "Flatten", "Dense", "BatchNormalization", "Dense", "BatchNormalization", "Dense",
        ],
        "use_bias": [True, True, True],
        # + BN(300): 600 trainable, 600 not; BN(100): 200 trainable, 200 not.
        "params": (268_210, 267_410, 800),
    },
    "bn_before_activation": {
        "layers": [
            "Flatten", "Dense", "BatchNormalization", "Activation",
            "Dense", "BatchNormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        # hidden Dense layers lose their 300 + 100 biases; the two BN layers add 1,600.
        "params": (267_810, 267_010, 800),
    },
    "bn_input": {
        "layers": ["Flatten", "BatchNormalization", "Dense", "Dense", "Dense"],
        "use_bias": [True, True, True],
        # + BN(784): 1,568 trainable, 1,568 not.
        "params": (269_746, 268_178, 1_568),
    },
    "bn_input_scaled": {
        "layers": ["Flatten", "BatchNormalization", "Dense", "Dense", "Dense"],
        "use_bias": [True, True, True],
        "params": (269_746, 268_178, 1_568),  # bn_input's network; only its input differs
    },
    "ghost_bn_before_activation": {
        "layers": [
            "Flatten", "Dense", "GhostBatchNormalization", "Activation",
            "Dense", "GhostBatchNormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        "params": (267_810, 267_010, 800),  # the weights of bn_before_activation: only the statistics differ
    },
    "renorm_before_activation": {
        "layers": [
            "Flatten", "Dense", "BatchRenormalization", "Activation",
            "Dense", "BatchRenormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        # bn_before_activation's + 3 scalars a layer: the step count and the current r_max and d_max
        "params": (267_816, 267_010, 806),
    },
    "noisy_bn_before_activation": {
        "layers": [
            "Flatten", "Dense", "NoisyBatchNormalization", "Activation",
            "Dense", "NoisyBatchNormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        "params": (267_810, 267_010, 800),  # bn_before_activation's weights: the noise has no parameters
    },
    "layer_norm_before_activation": {
        "layers": [
            "Flatten", "Dense", "LayerNormalization", "Activation",
            "Dense", "LayerNormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        # gamma and beta a unit (800), no moving statistics
        "params": (267_010, 267_010, 0),
    },
    "group_norm_before_activation": {
        "layers": [
            "Flatten", "Dense", "GroupNormalization", "Activation",
            "Dense", "GroupNormalization", "Activation", "Dense",
        ],
        "use_bias": [False, False, True],
        "params": (267_010, 267_010, 0),  # gamma and beta a unit, as layer norm
    },
    "weight_norm": {
        "layers": ["Flatten", "WeightNormDense", "WeightNormDense", "Dense"],
        "use_bias": [True, True, True],
        # no_bn's + one scale g a hidden unit (300 + 100)
        "params": (267_010, 267_010, 0),
    },
}
assert DENSE_784_300 + DENSE_300_100 + DENSE_100_10 == EXPECTED["no_bn"]["params"][0]


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def test_every_variant_has_expectations():
    assert sorted(EXPECTED) == VARIANTS


@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_sequence(variant):
    model = bnlab.build_model(variant)
    assert [type(layer).__name__ for layer in model.layers] == EXPECTED[variant]["layers"]
    assert model.input_shape == (None, 28, 28)
    assert model.layers[-1].units == 10
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.name == variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_use_bias(variant):
    dense = [layer for layer in bnlab.build_model(variant).layers if hasattr(layer, "units")]
    assert [layer.use_bias for layer in dense] == EXPECTED[variant]["use_bias"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts(variant):
    model = bnlab.build_model(variant)
    counts = (model.count_params(), _count(model.trainable_weights), _count(model.non_trainable_weights))
    assert counts == EXPECTED[variant]["params"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_round_trip_gives_identical_predictions(variant, tmp_path):
    keras.utils.set_random_seed(0)
    model = bnlab.build_model(variant)
    images = np.random.default_rng(0).integers(0, 256, size=(16, 28, 28), dtype=np.uint8)
    x = bnlab.preprocess_input(variant, images)
    # one training step so that BN's moving statistics differ from their initial values
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(16) % 10, epochs=1, verbose=0)
    path = tmp_path / f"{variant}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("variant", VARIANTS)
def test_overrides_build_other_shapes(variant):
    model = bnlab.build_model(
        variant, input_shape=(32, 32, 3), num_classes=100, hidden_units=(64, 32, 16), activation="tanh", groups=8
    )
    x = np.zeros((2, 32, 32, 3), dtype=np.float32)
    assert model(x).shape == (2, 100)
    dense = [layer for layer in model.layers if hasattr(layer, "units")]
    assert [layer.units for layer in dense] == [64, 32, 16, 100]


@pytest.mark.parametrize("variant", VARIANTS)
def test_preprocessing(variant):
    images = np.array([[0, 51, 255]], dtype=np.uint8)
    x = bnlab.preprocess_input(variant, images)
    assert x.dtype == np.float32
    expected = [0.0, 51.0, 255.0] if variant == "bn_input" else [0.0, 0.2, 1.0]
    np.testing.assert_allclose(x[0], expected, rtol=1e-6)


def test_unknown_variant_lists_choices():
    with pytest.raises(ValueError, match=r"Unknown variant 'bn_befor'\. "
                                         r"Available: bn_after_activation, bn_before_activation, bn_input, "
                                         r"bn_input_scaled, "
                                         r"ghost_bn_before_activation, group_norm_before_activation, "
                                         r"layer_norm_before_activation, no_bn, noisy_bn_before_activation, "
                                         r"renorm_before_activation, "
                                         r"weight_norm\."):
        bnlab.build_model("bn_befor")


def test_unknown_override_lists_accepted_arguments():
    with pytest.raises(ValueError, match=r"unknown argument\(s\) units .*Accepted: hidden_units"):
        bnlab.build_model("no_bn", units=3)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_norm": "sideways"},
         r"batch_norm must be one of 'none', 'before_activation', 'after_activation'; received 'sideways'"),
        ({"input_normalization": "zca"}, r"input_normalization must be one of 'none', 'batch_norm'; received 'zca'"),
        ({"hidden_units": ()}, r"hidden_units must be a non-empty sequence of positive integers.*received \(\)"),
        ({"hidden_units": (300, 0)}, r"received \(300, 0\)"),
        ({"num_classes": 0}, r"num_classes must be a positive integer; received 0"),
        ({"input_shape": "28x28"}, r"input_shape must be .*received '28x28'"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\); received 1.0"),
        ({"epsilon": 0.0}, r"epsilon must be positive; received 0.0"),
    ],
)
def test_bad_builder_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_mlp(**arguments)


def test_bn_options_reach_every_bn_layer():
    model = bnlab.build_model("bn_before_activation", momentum=0.9, epsilon=1e-5)
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [(layer.momentum, layer.epsilon) for layer in bn] == [(0.9, 1e-5), (0.9, 1e-5)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_built_in_variants_are_arguments_of_build_mlp(variant):
    spec = bnlab.get_variant(variant)
    assert spec.builder == MLP_BUILDER and spec.resolve_builder() is build_mlp
    assert {"batch_norm", "input_normalization", "name"} <= set(spec.builder_args()) <= set(BUILDER_ARGUMENTS)
    assert spec.builder_args()["name"] == variant and spec.references() == {}


def test_builder_argument_list_matches_signature():
    assert tuple(inspect.signature(build_mlp).parameters) == BUILDER_ARGUMENTS
    defaults = {name: parameter.default for name, parameter in inspect.signature(build_mlp).parameters.items()}
    assert defaults == BUILDER_DEFAULTS


def test_the_first_four_variants_keep_their_arguments():
    # the normalizer options came later: the original variants' layers must not change
    for variant in ("no_bn", "bn_after_activation", "bn_before_activation", "bn_input", "bn_input_scaled"):
        assert set(bnlab.get_variant(variant).builder_args()) == {"batch_norm", "input_normalization", "name"}


def test_import_does_not_pick_backend():
    code = "import sys, bnlab, bnlab.models.variants, bnlab.config; assert 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_keras_backend_variable_is_honoured():
    # bnlab must leave the choice to KERAS_BACKEND: with "jax" asked for, Keras either runs
    # on JAX or, where JAX is not installed, fails to import it; never silently TensorFlow.
    code = """
import importlib.util, bnlab
try:
    bnlab.build_model("no_bn")
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
except ModuleNotFoundError as error:
    assert importlib.util.find_spec("jax") is None and "jax" in str(error), error
"""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("variant", VARIANTS)
def test_nonlinearity_layer_names_the_layer_applying_the_activation(variant):
    model = build_model(variant, hidden_units=(8, 6, 4), activation="sigmoid", groups=2)
    for index in (1, 2, 3):
        layer = model.get_layer(nonlinearity_layer(model, index))
        # either a separate Activation layer or a Dense with the activation fused in
        assert layer.activation is keras.activations.sigmoid
        assert layer.name.startswith(f"hidden_{index}")


def test_nonlinearity_layer_of_a_missing_hidden_layer():
    model = build_model("no_bn")
    with pytest.raises(ValueError, match=r"no hidden layer 3; its hidden layers are 1, 2"):
        nonlinearity_layer(model, 3)
