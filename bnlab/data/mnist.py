"""MNIST loading, integrity checks and splits.

Reads the canonical IDX files (shipped inside the package, in a directory, in a Keras-style
`.npz`, or through `keras.datasets`), checks every array against the pinned SHA-256 of the
official decompressed files, and cuts train / validation / test splits. Knows nothing of runs
or models, and never imports keras unless asked to load through it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bnlab.data.idx import DataIntegrityError, idx_bytes, idx_sha256, read_idx, write_idx

__all__ = [
    "MNIST_FILES", "MNIST_SHA256", "DataIntegrityError", "Splits", "binarize_images", "binarize_splits",
    "idx_bytes", "load_mnist", "read_idx", "split_mnist", "write_idx",
]

MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the decompressed official files, as published in bnlab/mnist/README.md.
MNIST_SHA256 = {
    "x_train": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "y_train": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "x_test": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "y_test": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_MNIST_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}

_VALIDATION_MODES = ("holdout", "test")


def load_mnist(
    source=None, *, verify: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads MNIST as `keras.datasets.mnist.load_data()` does, without network access.

    Args:
        source: Where to read from. None: the copy shipped in the package. A directory (str
            or Path): the four IDX files by their canonical names (`MNIST_FILES`), each
            gzipped (name + ".gz") or not; when both exist the uncompressed one is read. A
            path ending in `.npz`: the Keras layout, keys x_train, y_train, x_test, y_test.
            The string "keras": `keras.datasets.mnist.load_data()`, which may download.
        verify: Check every array's dtype, shape and SHA-256 against the canonical MNIST.
            False loads non-canonical data (a modified or smaller copy) deliberately.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28) and (10000,) when verified.

    Raises:
        FileNotFoundError: If the directory, a file in it, or the `.npz` file is missing.
        DataIntegrityError: If a file is corrupt or malformed, an `.npz` key is missing, the
            images and labels differ in number, or (with verify) an array is not canonical.
        ValueError: If `source` is none of the accepted forms.

    Example:
        (x_train, y_train), (x_test, y_test) = load_mnist()
        splits = split_mnist(load_mnist("~/data/mnist"), train_subset=1000)
    """
    arrays, origins = _read_source(source)
    _check_mnist(arrays, origins, verify)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _read_source(source):
    """Returns the four arrays by role, and where each came from, for error messages."""
    if source is None:
        return _read_packaged()
    if isinstance(source, str) and source == "keras":
        return _read_keras()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.suffix == ".npz":
            return _read_npz(path)
        if path.is_dir():
            return _read_directory(path)
        if not path.exists():
            raise FileNotFoundError(
                f"MNIST source '{path}' does not exist; expected a directory of IDX files "
                "or a .npz file."
            )
    raise ValueError(
        "Unknown MNIST source. Expected None (the copy shipped with bnlab), 'keras', a "
        f"directory of IDX files or a path ending in .npz; received {source!r}."
    )


def _read_packaged():
    """Reads the gzipped IDX files shipped in bnlab/mnist."""
    folder = importlib.resources.files("bnlab") / "mnist"
    arrays, origins = {}, {}
    for role, name in MNIST_FILES.items():
        with importlib.resources.as_file(folder / f"{name}.gz") as path:
            arrays[role], origins[role] = read_idx(path), f"'{path}'"
    return arrays, origins


def _read_directory(directory: Path):
    """Reads the four IDX files of a directory, uncompressed or gzipped."""
    paths = {}
    for role, name in MNIST_FILES.items():
        candidates = [directory / name, directory / f"{name}.gz"]
        paths[role] = next((path for path in candidates if path.is_file()), None)
    missing = [f"{name} (or {name}.gz)" for role, name in MNIST_FILES.items() if not paths[role]]
    if missing:
        raise FileNotFoundError(
            f"MNIST directory '{directory}' lacks {', '.join(missing)}; expected the four "
            f"IDX files by their canonical names: {', '.join(MNIST_FILES.values())}."
        )
    arrays = {role: read_idx(path) for role, path in paths.items()}
    return arrays, {role: f"'{path}'" for role, path in paths.items()}


def _read_npz(path: Path):
    """Reads an .npz archive with the keys of keras.datasets.mnist."""
    if not path.is_file():
        raise FileNotFoundError(f"MNIST archive '{path}' not found.")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array")
        with archive:
            present = sorted(archive.files)
            arrays = {role: archive[role] for role in MNIST_FILES if role in present}
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataIntegrityError(
            f"MNIST archive '{path}' is not a readable .npz file: {error}."
        ) from error
    missing = [role for role in MNIST_FILES if role not in present]
    if missing:
        raise DataIntegrityError(
            f"MNIST archive '{path}' lacks key(s) {', '.join(missing)}; expected x_train, "
            f"y_train, x_test and y_test as keras.datasets.mnist stores them, received "
            f"{', '.join(present) or 'no arrays'}."
        )
    return arrays, {role: f"'{path}' key '{role}'" for role in MNIST_FILES}


def _read_keras():
    """Loads through keras.datasets, which downloads on first use."""
    import keras  # Imported here only: importing bnlab.data.mnist must not start a backend.

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return arrays, {role: f"keras.datasets.mnist {role}" for role in arrays}


def _check_mnist(arrays, origins, verify: bool) -> None:
    """Raises DataIntegrityError unless the arrays are usable (and canonical, with verify)."""
    for images, labels in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(arrays[images]) != len(arrays[labels]):
            raise DataIntegrityError(
                f"MNIST {images} from {origins[images]} holds {len(arrays[images])} images "
                f"but {labels} from {origins[labels]} holds {len(arrays[labels])} labels; "
                "expected one label per image."
            )
    if verify:
        for role, array in arrays.items():
            _verify_array(role, array, origins[role])


def _verify_array(role: str, array: np.ndarray, origin: str) -> None:
    """Checks one array's dtype, shape and SHA-256 against the canonical MNIST."""
    expected_shape = _MNIST_SHAPES[role]
    if array.dtype != np.uint8 or array.shape != expected_shape:
        raise DataIntegrityError(
            f"MNIST {role} from {origin} has dtype {array.dtype} and shape {array.shape}; "
            f"expected uint8 of shape {expected_shape}. Pass verify=False to load "
            "non-canonical data."
        )
    received = idx_sha256(array)
    if received != MNIST_SHA256[role]:
        raise DataIntegrityError(
            f"MNIST {role} from {origin} is not the canonical MNIST: expected sha256 "
            f"{MNIST_SHA256[role]}, received {received}. The file is corrupt or modified; "
            "replace it, or pass verify=False to load non-canonical data deliberately."
        )


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
