"""Train / validation / test splits cut from MNIST, and the binarized images of Ioffe & Szegedy 2015.

Works on the arrays `bnlab.data.mnist.load_mnist` returns; knows nothing of runs or models.
"""

from __future__ import annotations

import dataclasses

import numpy as np

_VALIDATION_MODES = ("holdout", "test")


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train, validation and test arrays cut from MNIST by `split_mnist`.

    Attributes:
        x_train, y_train: The images and labels to fit on.
        x_val, y_val: The images and labels to select models and stop on.
        x_test, y_test: The official MNIST test set.
        validation: "holdout" (the end of the training set) or "test" (the test set itself).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    validation: str


def split_mnist(
    mnist,
    *,
    validation: str = "holdout",
    validation_size: int = 5000,
    train_subset: int | None = None,
    stratify: bool = False,
) -> Splits:
    """Cuts MNIST into train, validation and test sets, as views where possible.

    Args:
        mnist: `((x_train, y_train), (x_test, y_test))` as `load_mnist` returns it.
        validation: "holdout" validates on the last `validation_size` training images and
            trains on the rest; "test" validates on the test set, as classic Keras
            tutorials do (then `validation_size` is ignored).
        validation_size: Number of training images held out, from 1 to len(x_train) - 1.
        train_subset: Keep only this many of the remaining training images, from 1 to all
            of them; None keeps all.
        stratify: With `train_subset`, take a deterministic class-stratified subset (class
            counts proportional to the remaining training set, the first examples of each
            class, in original order) instead of the first `train_subset` images.

    Returns:
        The `Splits`. Every array is a view of `mnist` except a stratified subset.

    Raises:
        ValueError: If `validation` is unknown, or `validation_size` or `train_subset` is
            out of range, or a stratified subset is smaller than the number of classes.

    Example:
        splits = split_mnist(load_mnist(), train_subset=10000, stratify=True)
        model.fit(splits.x_train, splits.y_train,
                  validation_data=(splits.x_val, splits.y_val))
    """
    (x_train, y_train), (x_test, y_test) = mnist
    if validation not in _VALIDATION_MODES:
        raise ValueError(
            f"Unknown validation mode {validation!r}. "
            f"Available: {', '.join(_VALIDATION_MODES)}."
        )
    if validation == "holdout":
        _check_count("validation_size", validation_size, len(x_train) - 1, "training images")
        cut = len(x_train) - validation_size
        x_val, y_val = x_train[cut:], y_train[cut:]
        x_train, y_train = x_train[:cut], y_train[:cut]
    else:
        x_val, y_val = x_test, y_test
    if train_subset is not None:
        _check_count("train_subset", train_subset, len(x_train), "training images left")
        keep = _stratified_indices(y_train, train_subset) if stratify else slice(train_subset)
        x_train, y_train = x_train[keep], y_train[keep]
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, validation)


def _check_count(name: str, value, maximum: int, what: str) -> None:
    """Raises ValueError unless value is an integer from 1 to maximum."""
    is_integer = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_integer or not 1 <= value <= maximum:
        raise ValueError(
            f"{name} must be an integer from 1 to {maximum} (the number of {what}); "
            f"received {value!r}."
        )


def _stratified_indices(labels: np.ndarray, size: int) -> np.ndarray:
    """Returns sorted indices of a class-proportional subset of exactly `size` examples."""
    classes, counts = np.unique(labels, return_counts=True)
    if size < len(classes):
        raise ValueError(
            f"A stratified train_subset needs at least one image per class: expected at "
            f"least {len(classes)} (the number of classes), received {size}."
        )
    # Largest-remainder rounding: floor every quota, then give the leftover examples to the
    # classes with the largest remainders (ties to the lower class), so the total is exact.
    quotas = counts.astype(np.int64) * size
    take = quotas // len(labels)
    order = np.argsort(-(quotas % len(labels)), kind="stable")
    take[order[: size - take.sum()]] += 1
    chosen = [np.flatnonzero(labels == label)[:n] for label, n in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


BINARY_THRESHOLD = 128  # half of the 0..255 range: a pixel is ink when at least half dark


def binarize_images(images: np.ndarray, threshold: int = BINARY_THRESHOLD) -> np.ndarray:
    """Threshold raw pixels to 0 or 255, keeping the uint8 range that the variants scale.

    Ioffe & Szegedy 2015 (sec. 4.1) feed their MNIST network "a 28x28 binary image"; keeping
    0 and 255 (rather than 0 and 1) lets every variant apply its own input scaling afterwards.

    Args:
        images: raw uint8 pixel values 0..255, any shape.
        threshold: pixels at or above it become 255, the others 0.

    Returns:
        A uint8 array of the same shape holding only 0 and 255.

    Raises:
        ValueError: `images` is not uint8, or `threshold` is outside 1..255.

    Example:
        >>> binarize_images(np.array([0, 127, 128, 255], dtype=np.uint8))
        array([  0,   0, 255, 255], dtype=uint8)
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"binarize_images expects raw uint8 pixels 0..255; received dtype {images.dtype}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or not 1 <= threshold <= 255:
        raise ValueError(f"binarize_images: threshold must be an integer from 1 to 255; received {threshold!r}.")
    return np.where(images >= threshold, np.uint8(255), np.uint8(0))


def binarize_splits(splits: Splits, threshold: int = BINARY_THRESHOLD) -> Splits:
    """`splits` with every image set binarized (`binarize_images`); labels unchanged."""
    return dataclasses.replace(
        splits,
        x_train=binarize_images(splits.x_train, threshold),
        x_val=binarize_images(splits.x_val, threshold),
        x_test=binarize_images(splits.x_test, threshold),
    )
