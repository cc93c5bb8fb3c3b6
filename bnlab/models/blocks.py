"""The MLP's blocks: a hidden layer with its normalizer where the placement puts it, the input's
normalizer, and one function per normalizer that makes its layer (the normalizer table in
`bnlab.models.normalizers` names them). The only code that branches on placement and normalizer.
"""

from __future__ import annotations

import keras

from bnlab.models.arguments import BatchNormPlacement, InputNormalization
from bnlab.models.layers import BatchRenormalization, GhostBatchNormalization, WeightNormDense
from bnlab.models.noise import NoisyBatchNormalization
from bnlab.models.normalizers import Normalizer, get_normalizer
from bnlab.models.references import import_function


def batch_layer(name: str, settings: dict) -> keras.layers.Layer:
    """Keras BatchNormalization with the builder's momentum and epsilon."""
    return keras.layers.BatchNormalization(momentum=settings["momentum"], epsilon=settings["epsilon"], name=name)


def ghost_layer(name: str, settings: dict) -> keras.layers.Layer:
    """Ghost batch normalization over slices of `virtual_batch_size` examples."""
    return GhostBatchNormalization(virtual_batch_size=settings["virtual_batch_size"], momentum=settings["momentum"],
                                   epsilon=settings["epsilon"], name=name)


def renorm_layer(name: str, settings: dict) -> keras.layers.Layer:
    """Batch renormalization with the builder's r_max / d_max schedule, over ghost slices."""
    return BatchRenormalization(
        virtual_batch_size=settings["virtual_batch_size"], r_max=settings["renorm_r_max"],
        d_max=settings["renorm_d_max"], warmup_steps=settings["renorm_warmup_steps"],
        r_max_steps=settings["renorm_r_max_steps"], d_max_steps=settings["renorm_d_max_steps"],
        momentum=settings["momentum"], epsilon=settings["epsilon"], name=name,
    )


def noisy_layer(name: str, settings: dict) -> keras.layers.Layer:
    """BatchNormalization plus noise that changes every training step (Santurkar et al. 2018, sec. 2.1)."""
    return NoisyBatchNormalization(noise_mean=settings["noise_mean"], noise_stddev=settings["noise_stddev"],
                                   momentum=settings["momentum"], epsilon=settings["epsilon"], name=name)


def layer_layer(name: str, settings: dict) -> keras.layers.Layer:
    """Keras LayerNormalization over the units of each example."""
    return keras.layers.LayerNormalization(epsilon=settings["epsilon"], name=name)


def group_layer(name: str, settings: dict) -> keras.layers.Layer:
    """Keras GroupNormalization over `groups` groups of units of each example."""
    return keras.layers.GroupNormalization(groups=settings["groups"], epsilon=settings["epsilon"], name=name)


def normalization_layer(normalizer: Normalizer, name: str, settings: dict) -> keras.layers.Layer:
    """The layer of a normalizer that adds one (the table's `layer` function, called)."""
    return import_function(normalizer.layer)(name, settings)


def input_block(settings: dict) -> list:
    """The normalizer's layer on the flattened input, when `input_normalization` asks for one."""
    normalizer = get_normalizer(settings["normalization"])
    if InputNormalization(settings["input_normalization"]) is InputNormalization.NONE or normalizer.layer is None:
        return []
    return [normalization_layer(normalizer, f"input_{normalizer.suffix}", settings)]


def hidden_block(index: int, units: int, settings: dict) -> list:
    """One hidden layer of `units` with the normalizer where `batch_norm` places it."""
    prefix, activation = f"hidden_{index}", settings["activation"]
    dense = {"kernel_initializer": settings["kernel_initializer"], "name": prefix}
    normalizer = get_normalizer(settings["normalization"])
    placement = BatchNormPlacement(settings["batch_norm"])
    if placement is BatchNormPlacement.NONE or normalizer.name == "none":
        return [keras.layers.Dense(units, activation=activation, **dense)]
    if normalizer.on_kernel:  # Salimans & Kingma 2016: the kernel itself is normalized, no extra layer
        return [WeightNormDense(units, activation=activation, **dense)]
    layer = normalization_layer(normalizer, f"{prefix}_{normalizer.suffix}", settings)
    if placement is BatchNormPlacement.BEFORE_ACTIVATION:
        # Ioffe & Szegedy 2015, sec. 3.2: normalize Wu, not Wu + b; the normalizer's beta replaces b.
        return [keras.layers.Dense(units, use_bias=False, **dense), layer,
                keras.layers.Activation(activation, name=f"{prefix}_{_activation_name(activation)}")]
    return [keras.layers.Dense(units, activation=activation, **dense), layer]


def _activation_name(activation) -> str:
    return activation if isinstance(activation, str) else "activation"
