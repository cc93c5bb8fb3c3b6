"""A user's own models for the extension tests, named by reference as a config's `builder` key
names them ("extension_models:build_cnn", with tests/ on sys.path)."""

import keras
import numpy as np

CNN_FILTERS = 8


def build_cnn(filters: int = CNN_FILTERS, momentum: float = 0.99) -> keras.Model:
    """Conv2D(filters, 3) -> BatchNormalization -> ReLU -> global average pooling -> Dense(10, softmax)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(filters, 3, name="conv"),
            keras.layers.BatchNormalization(momentum=momentum, name="conv_bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(10, activation="softmax", name="output"),
        ],
        name="small_cnn",
    )


def add_channel(images: np.ndarray) -> np.ndarray:
    """Raw uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / np.float32(255.0))[..., np.newaxis]


def build_not_a_model():
    return "not a model"


def build_failing(filters: int = 8):
    raise RuntimeError(f"cannot build {filters} filters\nsecond line of the message")


def build_anything(**arguments) -> keras.Model:
    """Accepts any keyword argument (**kwargs), as some model zoos' builders do."""
    return build_cnn(filters=arguments.get("filters", CNN_FILTERS))


NOT_A_FUNCTION = 3


def unregister_added() -> None:
    """Remove every variant a test registered, so that other tests see the built-in table."""
    import bnlab
    from bnlab.models.variants import BUILT_IN_VARIANTS

    for name in sorted(set(bnlab.list_variants()) - set(BUILT_IN_VARIANTS)):
        bnlab.unregister_variant(name)
