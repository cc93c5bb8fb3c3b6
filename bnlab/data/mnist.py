"""MNIST loading and integrity checks.

Reads the canonical IDX files (shipped inside the package, in a directory, in a Keras-style
`.npz`, or through `keras.datasets`) and checks every array against the pinned SHA-256 of the
official decompressed files; `bnlab.data.splits` cuts them into train / validation / test.
Knows nothing of runs or models, and never imports keras unless asked to load through it.
"""

from __future__ import annotations

import importlib.resources
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bnlab.data.idx import DataIntegrityError, idx_sha256, read_idx

__all__ = ["MNIST_FILES", "MNIST_SHA256", "load_mnist"]

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
        splits = split_mnist(load_mnist("~/data/mnist"), train_subset=1000)  # bnlab.data.splits
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
