"""The `variants` section: registry names, labels and builder overrides, and a user's own models
named by their builder, and the checks of `model.ARG` grid keys against every variant's builder.

A variant may name its builder (and preprocessing) by reference: `{name: small_cnn, builder:
"mypkg.models:build_cnn", preprocess: "mypkg.models:add_channel"}`. Loading the config imports
them and registers the variant in this process (`bnlab.register_variant`); a worker process
that loads the same config (`ExperimentConfig.to_dict()` keeps the references) registers it
there too. Whether the builder returns a `keras.Model` needs Keras: the runner checks that when
it builds every variant before training.
"""

from __future__ import annotations

import itertools
import re

from bnlab.common.startup import START_UP_LINE, held_stderr
from bnlab.config.grid import MODEL_PREFIX, apply_training_point, model_overrides
from bnlab.config.problems import REQUIRED, Problems, check_keys, get_value
from bnlab.config.schema import VariantConfig
from bnlab.models.references import function_text, import_function
from bnlab.models.variants import (
    BUILT_IN_VARIANTS,
    NAME_PATTERN,
    VARIANTS,
    Variant,
    builder_argument_problems,
    builder_setting_problems,
    get_variant,
    list_variants,
    register_variant,
)

_VARIANT_KEYS = ("name", "label", "overrides", "builder", "preprocess")
# A builder's module usually imports Keras, whose backend's C++ start-up lines (and TensorFlow's
# two-line CPU notice) would otherwise reach the terminal before the command's display starts.
_START_UP = re.compile(f"{START_UP_LINE.pattern}|To enable the following instructions: ")


def parse_variants(value, problems: Problems) -> tuple[VariantConfig | None, ...]:
    """The `variants` list: each a registry name, or a mapping with name, label, overrides (and a
    builder and preprocess of the user's own); labels must differ."""
    expected = (f"a non-empty list of variant names ({', '.join(list_variants())}) "
                "or mappings with name, label, overrides (and builder, preprocess for a model of your own)")
    if value is REQUIRED or not isinstance(value, list) or not value:
        problems.add("variants", expected + ("; the key is missing" if value is REQUIRED else ""),
                     *(() if value is REQUIRED else (value,)))
        return ()
    variants = tuple(_parse_variant(item, f"variants[{i}]", problems) for i, item in enumerate(value))
    labels = [v.label for v in variants if v is not None]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        problems.add("variants", "distinct labels (give repeated variants a label)", f"{label!r} more than once",
                     raw=True)
    return variants


def _parse_variant(item, key: str, problems: Problems) -> VariantConfig | None:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        problems.add(key, "a variant name or a mapping with name, label, overrides", item)
        return None
    check_keys(item, _VARIANT_KEYS, key, problems)
    if "builder" in item:
        name = _register_builder(item, key, problems)
    else:
        name = get_value(item, "name", key, problems, lambda v: v in list_variants(),
                         f"one of {', '.join(list_variants())}")
        if "preprocess" in item:
            problems.add(f"{key}.preprocess", f"no preprocess without a builder ({key}.builder: the variant's "
                         "preprocessing belongs to the builder of a user's own model)", item["preprocess"])
    label = get_value(item, "label", key, problems, lambda v: isinstance(v, str) and NAME_PATTERN.fullmatch(v),
                      "a label of letters, digits, '_', '.', '-' (it names the trial folders)", default=name)
    overrides = get_value(item, "overrides", key, problems, lambda v: isinstance(v, dict),
                          "a mapping of the builder's keyword arguments", default={})
    if name is None:
        return None
    spec = get_variant(name)
    check_overrides(spec, overrides, f"{key}.overrides", problems)
    references = {field: item[field] for field in ("builder", "preprocess") if field in item} or spec.references()
    return VariantConfig(name, label, dict(overrides), **references)


def _register_builder(item: dict, key: str, problems: Problems) -> str | None:
    """The name of a variant the config names by its builder, registered here unless it already is."""
    name = get_value(item, "name", key, problems,
                     lambda v: isinstance(v, str) and NAME_PATTERN.fullmatch(v) and v not in BUILT_IN_VARIANTS,
                     "a name of your own for the builder's variant: letters, digits, '_', '.', '-', and not a "
                     f"built-in variant's ({', '.join(BUILT_IN_VARIANTS)})")
    builder = _import(item, "builder", key, problems)
    preprocess = _import(item, "preprocess", key, problems) if "preprocess" in item else None
    if name is None or builder is None or (preprocess is None and "preprocess" in item):
        return None
    registered = VARIANTS.get(name)
    if registered is None:
        register_variant(name, builder, preprocess, f"built by {item['builder']}")
    elif registered.builder is not builder or registered.preprocessor is not preprocess:
        problems.add(f"{key}.name", f"a name not registered already: {name!r} is registered with builder "
                     f"{function_text(registered.builder)} and preprocess "
                     f"{function_text(registered.preprocessor) if registered.preprocessor else 'None'}; choose "
                     "another name (or call bnlab.unregister_variant first)", name)
        return None
    return name


def _import(item: dict, field: str, key: str, problems: Problems):
    """The function item[field] names, or None (with a problem recorded) when it cannot be imported."""
    try:
        with held_stderr(_START_UP):
            return import_function(item[field])
    except ValueError as error:
        problems.add(f"{key}.{field}", f"'module:function' naming an importable function ({error})", item[field])
        return None


def check_overrides(spec: Variant, overrides: dict, key: str, problems: Problems) -> None:
    """Override names the variant's builder accepts; for `build_mlp`, values in range too."""
    if spec.accepted == () and overrides:
        problems.add(key, f"no overrides: the builder {function_text(spec.builder)} takes no keyword arguments",
                     overrides)
    elif spec.accepted is not None:
        check_keys(overrides, spec.accepted, key, problems)
    if spec.is_mlp:
        named = {name: value for name, value in overrides.items() if isinstance(name, str)}
        for argument, expected, received in builder_argument_problems(**named):
            problems.add(f"{key}.{argument}", expected, received)


def model_argument_problem(argument: str, variants: tuple[VariantConfig, ...]) -> str | None:
    """Why `model.ARGUMENT` cannot be a grid key of these variants; None when every builder accepts it."""
    refusing = []
    for index, variant in enumerate(variants):
        accepted = get_variant(variant.name).accepted
        if accepted is not None and argument not in accepted:
            refusing.append(f"variants[{index}] ({variant.label}) accepts {', '.join(accepted) or 'none'}")
    if not refusing:
        return None
    return f"a builder argument every variant accepts, as model.ARG; {'; '.join(refusing)}"


def model_value_problems(argument: str, value, variants: tuple[VariantConfig, ...]) -> list[tuple[str, object]]:
    """(expected, received) for `value` as the override `argument` of the `build_mlp` variants; a user's
    builder judges its own arguments when the runner builds it."""
    if not any(get_variant(variant.name).is_mlp for variant in variants):
        return []
    return [(expected, received) for _, expected, received in builder_argument_problems(**{argument: value})]


def check_builder_settings(variants, grid: dict, training, problems: Problems) -> None:
    """Each `build_mlp` variant's arguments fit together at every grid point, with its training batch
    (a group count that divides the widths, a virtual batch size that divides the batch, ...); each
    problem once, named by the key that set the argument."""
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    seen = set()
    for index, variant in enumerate(variants):
        spec = get_variant(variant.name)
        if not spec.is_mlp:
            continue
        for point in points:
            settings = spec.mlp_settings({**variant.overrides, **model_overrides(point)})
            batch_size = apply_training_point(training, point).batch_size
            for argument, expected, received in builder_setting_problems(settings, batch_size):
                key = _setting_key(argument, index, variant, point)
                what = expected if key.endswith(argument) else f"{argument} {expected}"
                if (key, what) not in seen:
                    seen.add((key, what))
                    problems.add(key, f"{what} (variants[{index}], {variant.label})", received)


def _setting_key(argument: str, index: int, variant: VariantConfig, point: dict) -> str:
    """The config key that set a builder argument: a grid key, the variant's overrides, or the variant."""
    if f"{MODEL_PREFIX}{argument}" in point:
        return f"grid.{MODEL_PREFIX}{argument}"
    if argument in variant.overrides:
        return f"variants[{index}].overrides.{argument}"
    return f"variants[{index}]"
