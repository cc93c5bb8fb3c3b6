"""`register_variant`: a user's own model in the variant table, its errors, and configs that name
it, by its registered name or by a `builder` reference; no training."""

import importlib
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import bnlab
from bnlab.config import ConfigError, load_config
from bnlab.models.builders import BuilderError
from bnlab.models.variants import BUILDER_ARGUMENTS, BUILT_IN_VARIANTS

TESTS = Path(__file__).resolve().parent
BASE = {
    "name": "registry",
    "dataset": {"validation_size": 256, "train_subset": 512},
    "variants": ["no_bn", "small_cnn"],
    "seeds": 1,
    "training": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.01}},
    "targets": [0.5],
}


@pytest.fixture
def models(monkeypatch):
    """The user's module (tests/ is no package: on sys.path, its modules import by their own names),
    and a variant table left as it was found."""
    monkeypatch.syspath_prepend(str(TESTS))
    module = importlib.import_module("extension_models")
    yield module
    module.unregister_added()


@pytest.fixture
def cnn(models):
    return bnlab.register_variant("small_cnn", models.build_cnn, models.add_channel, "Conv-BN-ReLU, pooled")


def problems(data):
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    return caught.value.problems


# ---- the table


def test_registered_variant_joins_the_table_and_builds(cnn, models):
    assert "small_cnn" in bnlab.list_variants()
    assert bnlab.get_variant("small_cnn") is cnn
    assert (cnn.summary, cnn.accepted, cnn.builder_reference) == (
        "Conv-BN-ReLU, pooled", ("filters", "momentum"), "extension_models:build_cnn")
    model = bnlab.build_model("small_cnn", filters=4, momentum=0.9)
    assert isinstance(model, keras.Model)
    assert model.get_layer("conv").filters == 4 and model.get_layer("conv_bn").momentum == 0.9


def test_registered_preprocess_and_the_default(cnn, models):
    images = np.array([[[0, 51, 255]]], dtype=np.uint8)
    assert bnlab.preprocess_input("small_cnn", images).shape == (1, 1, 3, 1)
    plain = bnlab.register_variant("plain_cnn", models.build_cnn)
    x = plain.preprocess(images)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [0.0, 0.2, 1.0], rtol=1e-6)
    assert plain.summary == "built by extension_models:build_cnn"


def test_unregister_leaves_the_built_in_table(cnn):
    bnlab.unregister_variant("small_cnn")
    assert bnlab.list_variants() == sorted(BUILT_IN_VARIANTS)
    with pytest.raises(ValueError, match=r"'small_cnn' is not registered\. Registered variants: none\."):
        bnlab.unregister_variant("small_cnn")
    with pytest.raises(ValueError, match=r"'no_bn' is a built-in variant; only registered ones can be removed"):
        bnlab.unregister_variant("no_bn")


@pytest.mark.parametrize(
    "name, builder, preprocess, message",
    [
        ("small_cnn", "build_cnn", None,
         r"register_variant: 'small_cnn' is already registered \(builder extension_models:build_cnn\); choose "
         r"another name, or call bnlab.unregister_variant\('small_cnn'\) first to replace it\."),
        ("no_bn", "build_cnn", None, r"register_variant: 'no_bn' is a built-in variant; choose another name\."),
        ("my cnn", "build_cnn", None,
         r"register_variant: name must be letters, digits, '_', '.', '-' \(it names trial folders\); "
         r"received 'my cnn'\."),
        ("other", "extension_models:build_cnn", None,
         r"register_variant: builder must be a function returning an uncompiled keras.Model; received "
         r"'extension_models:build_cnn' \(a str\)\."),
        ("other", "build_cnn", 255,
         r"register_variant: preprocess must be None or a function of raw uint8 images; received 255 \(a int\)\."),
    ],
)
def test_registration_errors(cnn, models, name, builder, preprocess, message):
    builder = getattr(models, builder, builder)
    with pytest.raises(ValueError, match=message):
        bnlab.register_variant(name, builder, preprocess)


def test_build_errors_name_the_variant_and_its_builder(models):
    bnlab.register_variant("broken", models.build_failing)
    bnlab.register_variant("text", models.build_not_a_model)
    bnlab.register_variant("small_cnn", models.build_cnn)
    with pytest.raises(BuilderError, match=r"^build_model: variant 'broken': its builder extension_models:"
                                           r"build_failing raised RuntimeError: cannot build 3 filters$"):
        bnlab.build_model("broken", filters=3)
    with pytest.raises(BuilderError, match=r"^build_model: variant 'text': expected its builder extension_models:"
                                           r"build_not_a_model to return an uncompiled keras.Model, received a str "
                                           r"\('not a model'\)\.$"):
        bnlab.build_model("text")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) units for variant 'small_cnn'\. "
                                         r"Accepted: filters, momentum\."):
        bnlab.build_model("small_cnn", units=3)


def test_a_builder_with_kwargs_accepts_any_override(models):
    variant = bnlab.register_variant("open_cnn", models.build_anything)
    assert variant.accepted is None
    assert bnlab.build_model("open_cnn", filters=2, anything="goes").get_layer("conv").filters == 2


def test_lambdas_and_local_functions_have_no_reference(models):
    def local_builder():
        return models.build_cnn()

    assert bnlab.register_variant("local", local_builder).builder_reference is None
    assert bnlab.register_variant("anonymous", lambda: models.build_cnn()).references() == {}


def test_the_table_stays_keras_free_at_import():
    code = ("import sys, bnlab; from bnlab.models import variants, references; "
            "assert 'keras' not in sys.modules and 'register_variant' in bnlab.__all__")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_mlp_arguments_are_still_the_built_in_variants_overrides():
    assert bnlab.get_variant("no_bn").accepted == BUILDER_ARGUMENTS


# ---- configs naming a registered variant


def test_config_names_a_registered_variant_and_records_its_references(cnn):
    config = load_config({**BASE, "variants": ["no_bn", {"name": "small_cnn", "overrides": {"filters": 4}}]})
    variant = config.variants[1]
    assert (variant.builder, variant.preprocess, dict(variant.overrides)) == (
        "extension_models:build_cnn", "extension_models:add_channel", {"filters": 4})
    assert config.to_dict()["variants"][0] == {"name": "no_bn", "label": "no_bn", "overrides": {}}
    assert load_config(config.to_dict()) == config
    assert config.with_variants(["small_cnn"]).variants[0].builder == "extension_models:build_cnn"


def test_overrides_of_a_registered_variant_are_its_builders_arguments(cnn):
    assert problems({**BASE, "variants": [{"name": "small_cnn", "overrides": {"units": 3, "filters": 4}}]}) == [
        "<config>: variants[0].overrides.units: expected no such key; allowed here: filters, momentum, "
        "received an unknown key."]


def test_a_registered_variants_values_are_left_to_its_builder(cnn):
    # momentum 1.5 would be refused for build_mlp; a user's builder judges its own arguments when built
    load_config({**BASE, "variants": [{"name": "small_cnn", "overrides": {"momentum": 1.5}}]})


def test_a_builder_without_arguments_takes_no_overrides(models):
    bnlab.register_variant("fixed", models.build_not_a_model)
    assert problems({**BASE, "variants": [{"name": "fixed", "overrides": {"filters": 4}}]}) == [
        "<config>: variants[0].overrides: expected no overrides: the builder extension_models:build_not_a_model "
        "takes no keyword arguments, received a mapping."]


# ---- configs naming a builder by reference


def yaml_variant(**fields):
    return {**BASE, "variants": ["no_bn", {"name": "yaml_cnn", **fields}]}


def test_builder_key_registers_the_variant_and_to_dict_keeps_it(models):
    data = yaml_variant(builder="extension_models:build_cnn", preprocess="extension_models:add_channel",
                        overrides={"filters": 4})
    config = load_config(data)
    assert bnlab.get_variant("yaml_cnn").resolve_builder() is models.build_cnn
    assert config.to_dict()["variants"][1] == {
        "name": "yaml_cnn", "label": "yaml_cnn", "overrides": {"filters": 4},
        "builder": "extension_models:build_cnn", "preprocess": "extension_models:add_channel"}
    assert load_config(data) == config  # loading again finds the same builder registered: no error
    bnlab.unregister_variant("yaml_cnn")  # as in a worker process, which has not registered it yet
    assert load_config(config.to_dict()) == config
    assert bnlab.get_variant("yaml_cnn").preprocessor is models.add_channel


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"builder": "no_such_module_xyz:build_cnn"},
         "variants[1].builder: expected 'module:function' naming an importable function (module no_such_module_xyz "
         "cannot be imported: No module named 'no_such_module_xyz'), received the string "
         "'no_such_module_xyz:build_cnn'."),
        ({"builder": "extension_models:build_cmm"},
         "variants[1].builder: expected 'module:function' naming an importable function (module extension_models "
         "has no function build_cmm), received the string 'extension_models:build_cmm'."),
        ({"builder": "extension_models:NOT_A_FUNCTION"},
         "variants[1].builder: expected 'module:function' naming an importable function (NOT_A_FUNCTION in module "
         "extension_models is a int, not a function), received the string 'extension_models:NOT_A_FUNCTION'."),
        ({"builder": "build_cnn"},
         "variants[1].builder: expected 'module:function' naming an importable function (not of the form "
         "module:function, e.g. mypkg.models:build_cnn), received the string 'build_cnn'."),
        ({"builder": "extension_models:build_cnn", "preprocess": "extension_models:add_chanel"},
         "variants[1].preprocess: expected 'module:function' naming an importable function (module "
         "extension_models has no function add_chanel), received the string 'extension_models:add_chanel'."),
        ({"preprocess": "extension_models:add_channel", "name": "bn_input"},
         "variants[1].preprocess: expected no preprocess without a builder (variants[1].builder: the variant's "
         "preprocessing belongs to the builder of a user's own model), received the string "
         "'extension_models:add_channel'."),
        ({"builder": "extension_models:build_cnn", "overrides": {"units": 3}},
         "variants[1].overrides.units: expected no such key; allowed here: filters, momentum, received an "
         "unknown key."),
    ],
)
def test_builder_key_problems(models, fields, message):
    assert problems(yaml_variant(**fields)) == [f"<config>: {message}"]


def test_builder_key_cannot_take_a_built_in_name(models):
    lines = problems({**BASE, "variants": [{"name": "no_bn", "builder": "extension_models:build_cnn"}]})
    assert lines == ["<config>: variants[0].name: expected a name of your own for the builder's variant: letters, "
                     "digits, '_', '.', '-', and not a built-in variant's (no_bn, bn_after_activation, "
                     "bn_before_activation, bn_input, bn_input_scaled, ghost_bn_before_activation, "
                     "renorm_before_activation, noisy_bn_before_activation, "
                     "layer_norm_before_activation, group_norm_before_activation, weight_norm), received the "
                     "string 'no_bn'."]


def test_builder_key_cannot_take_a_name_registered_with_another_builder(cnn):
    lines = problems({**BASE, "variants": [{"name": "small_cnn", "builder": "extension_models:build_anything"}]})
    assert lines == ["<config>: variants[0].name: expected a name not registered already: 'small_cnn' is "
                     "registered with builder extension_models:build_cnn and preprocess "
                     "extension_models:add_channel; choose another name (or call bnlab.unregister_variant first), "
                     "received the string 'small_cnn'."]


def test_no_references_when_the_preprocessing_cannot_be_imported(models):
    variant = bnlab.register_variant("half_cnn", models.build_cnn, lambda images: models.add_channel(images))
    assert variant.builder_reference == "extension_models:build_cnn" and variant.references() == {}
    config = load_config({**BASE, "variants": ["half_cnn"]})
    assert config.variants[0].builder is None
    assert load_config(config.to_dict()) == config  # this process knows the variant: it loads back
