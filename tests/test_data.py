"""Tests for bnlab.data: IDX reading and writing (idx), MNIST loading and verification (mnist), splits.

The expected MNIST facts are those published in bnlab/mnist/README.md.
"""

import gzip
import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bnlab.data.idx import DataIntegrityError, idx_bytes, read_idx, write_idx
from bnlab.data.mnist import MNIST_FILES, MNIST_SHA256, load_mnist
from bnlab.data.splits import Splits, binarize_images, binarize_splits, split_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGED = REPO_ROOT / "bnlab" / "mnist"
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
DECOMPRESSED_SIZES = {
    "x_train": 47040016,
    "y_train": 60008,
    "x_test": 7840016,
    "y_test": 10008,
}


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def arrays(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory, arrays):
    """The four canonical files, uncompressed (fast to write and to read back)."""
    directory = tmp_path_factory.mktemp("mnist_raw")
    for role, name in MNIST_FILES.items():
        write_idx(arrays[role], directory / name)
    return directory


def copy_dir(raw_dir, target, replace=None):
    """Links the canonical files into `target`, except the role in `replace`."""
    target.mkdir()
    for role, name in MNIST_FILES.items():
        if role != replace:
            os.symlink(raw_dir / name, target / name)
    return target


def flip_one_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- the packaged copy: facts from bnlab/mnist/README.md ---


def test_packaged_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28)
    assert y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}


def test_packaged_arrays_are_writable_and_native(arrays):
    for array in arrays.values():
        assert array.flags.writeable and array.flags.c_contiguous and array.dtype.isnative


def test_packaged_class_counts(mnist):
    (_, y_train), (_, y_test) = mnist
    assert np.bincount(y_train).tolist() == TRAIN_CLASS_COUNTS
    assert np.bincount(y_test).tolist() == TEST_CLASS_COUNTS


def test_packaged_first_labels(mnist):
    (_, y_train), (_, y_test) = mnist
    assert y_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:10].tolist() == FIRST_TEST_LABELS


def test_packaged_pixel_statistics(mnist):
    (x_train, _), _ = mnist
    pixels = x_train.reshape(len(x_train), -1)
    # Exact integer sums; ten times faster than x_train.std(), which converts to float64.
    mean = pixels.sum(dtype=np.int64) / pixels.size
    squares = np.einsum("ij,ij->", pixels, pixels, dtype=np.int64) / pixels.size
    std = np.sqrt(squares - mean**2)
    assert mean == pytest.approx(33.3184, abs=1e-4)
    assert std == pytest.approx(78.5675, abs=1e-4)
    assert mean / 255 == pytest.approx(0.1307, abs=1e-4)
    assert std / 255 == pytest.approx(0.3081, abs=1e-4)


def test_idx_bytes_reproduce_official_decompressed_files(arrays):
    for role, array in arrays.items():
        encoded = idx_bytes(array)
        assert len(encoded) == DECOMPRESSED_SIZES[role]
        assert hashlib.sha256(encoded).hexdigest() == MNIST_SHA256[role]


def test_write_idx_reproduces_packaged_gzip_byte_for_byte(arrays, tmp_path):
    for role in ("y_train", "y_test"):
        name = MNIST_FILES[role] + ".gz"
        write_idx(arrays[role], tmp_path / name)
        assert (tmp_path / name).read_bytes() == (PACKAGED / name).read_bytes()


# --- other sources ---


def test_directory_source_mixed_gzip_equals_packaged(arrays, raw_dir, tmp_path):
    directory = copy_dir(raw_dir, tmp_path / "mixed", replace="x_test")
    write_idx(arrays["x_test"], directory / "t10k-images-idx3-ubyte.gz", compresslevel=1)
    (x_train, y_train), (x_test, y_test) = load_mnist(directory)
    for role, loaded in zip(MNIST_FILES, (x_train, y_train, x_test, y_test)):
        assert loaded.dtype == np.uint8 and np.array_equal(loaded, arrays[role])


def test_directory_source_accepts_str_and_prefers_uncompressed(raw_dir, tmp_path, arrays):
    directory = copy_dir(raw_dir, tmp_path / "both")
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    (_, _), (_, y_test) = load_mnist(str(directory))
    np.testing.assert_array_equal(y_test, arrays["y_test"])


def test_npz_source_equals_packaged(arrays, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    for role, loaded in zip(MNIST_FILES, (x_train, y_train, x_test, y_test)):
        assert loaded.dtype == np.uint8 and np.array_equal(loaded, arrays[role])


def test_npz_missing_key_names_file_and_key(arrays, tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=arrays["y_test"], y_train=arrays["y_test"], x_test=arrays["y_test"])
    with pytest.raises(DataIntegrityError, match=r"partial\.npz' lacks key\(s\) y_test") as info:
        load_mnist(path)
    assert "received x_test, x_train, y_train" in str(info.value)


def test_npz_wrong_dtype_names_key(arrays, tmp_path):
    path = tmp_path / "int64.npz"
    np.savez(path, **{**arrays, "y_test": arrays["y_test"].astype(np.int64)})
    with pytest.raises(DataIntegrityError, match=r"y_test from .*int64\.npz' key 'y_test' has "
                       r"dtype int64 and shape \(10000,\); expected uint8 of shape \(10000,\)"):
        load_mnist(path)


def test_npz_that_is_not_an_archive(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"definitely not a zip file")
    with pytest.raises(DataIntegrityError, match=r"junk\.npz' is not a readable \.npz file"):
        load_mnist(path)


def test_keras_source_uses_keras_datasets(mnist, monkeypatch):
    calls = []

    def load_data():
        calls.append("load_data")
        return mnist

    fake_keras = types.SimpleNamespace(
        datasets=types.SimpleNamespace(mnist=types.SimpleNamespace(load_data=load_data))
    )
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    (x_train, _), (_, y_test) = load_mnist("keras")
    assert calls == ["load_data"]
    assert x_train is mnist[0][0] and y_test is mnist[1][1]


@pytest.mark.parametrize("source", [42, ["mnist"], b"/tmp"])
def test_unknown_source_type(source):
    with pytest.raises(ValueError, match=r"Unknown MNIST source\. Expected None .*, 'keras', a "
                       r"directory of IDX files or a path ending in \.npz; received "):
        load_mnist(source)


def test_existing_file_that_is_neither_directory_nor_npz(tmp_path):
    path = tmp_path / "mnist.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(ValueError, match=r"Unknown MNIST source.*mnist\.csv"):
        load_mnist(path)


def test_missing_source_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere' does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_missing_npz(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.npz' not found"):
        load_mnist(tmp_path / "absent.npz")


# --- damaged copies: every error names the file ---


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_corrupted_payload_fails_checksum(raw_dir, tmp_path, arrays, suffix):
    directory = copy_dir(raw_dir, tmp_path / "corrupt", replace="y_test")
    damaged = arrays["y_test"].copy()
    damaged[100] ^= 0x01  # the same as flipping one payload byte of the decompressed file
    path = directory / f"t10k-labels-idx1-ubyte{suffix}"
    write_idx(damaged, path)
    with pytest.raises(DataIntegrityError) as info:
        load_mnist(directory)
    message = str(info.value)
    assert f"'{path}'" in message
    assert f"expected sha256 {MNIST_SHA256['y_test']}" in message
    assert f"received {hashlib.sha256(idx_bytes(damaged)).hexdigest()}" in message
    assert "verify=False" in message


def test_corrupted_gzip_stream_names_file(raw_dir, tmp_path, arrays):
    directory = copy_dir(raw_dir, tmp_path / "badgzip", replace="x_test")
    path = directory / "t10k-images-idx3-ubyte.gz"
    write_idx(arrays["x_test"], path, compresslevel=1)
    flip_one_byte(path, path.stat().st_size // 2)
    with pytest.raises(DataIntegrityError, match="gzip stream is broken") as info:
        load_mnist(directory)
    assert f"'{path}'" in str(info.value)


def test_truncated_raw_file_names_file(raw_dir, tmp_path, arrays):
    directory = copy_dir(raw_dir, tmp_path / "truncated", replace="y_train")
    path = directory / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(arrays["y_train"])[:-8])
    with pytest.raises(DataIntegrityError) as info:
        load_mnist(directory)
    assert str(info.value) == (
        f"IDX file '{path}' is truncated: the header declares shape (60000,) of uint8 "
        "(60000 payload bytes), received 59992 bytes. Copy or download it again."
    )


def test_gzip_of_truncated_idx_names_file(tmp_path):
    path = tmp_path / "short.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(400, dtype=np.int16))[:-3]))
    with pytest.raises(DataIntegrityError, match=r"short\.idx\.gz' is truncated: the header "
                       r"declares shape \(400,\) of int16 \(800 payload bytes\), received 797"):
        read_idx(path)


def test_corrupt_dimension_cannot_force_a_huge_allocation(tmp_path):
    path = tmp_path / "huge.gz"
    data = bytearray(idx_bytes(np.zeros((10, 10, 10), np.uint8)))
    data[4:8] = (2**32 - 1).to_bytes(4, "big")
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataIntegrityError, match=r"huge\.gz' is truncated or its header is "
                       r"corrupt: the header declares shape \(4294967295, 10, 10\)"):
        read_idx(path)


def test_truncated_gzip_file_names_file(tmp_path, arrays):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_idx(arrays["y_test"], path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataIntegrityError, match="gzip stream is broken") as info:
        read_idx(path)
    assert f"'{path}'" in str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("magic", [b"\x00\x01\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"])
def test_bad_header_names_file(tmp_path, arrays, suffix, magic):
    path = tmp_path / f"t10k-labels-idx1-ubyte{suffix}"
    data = magic + idx_bytes(arrays["y_test"])[4:]
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataIntegrityError, match="has a bad header") as info:
        read_idx(path)
    assert f"'{path}'" in str(info.value)
    assert repr(magic.hex(" ")) in str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_over_long_payload_names_file(tmp_path, suffix):
    path = tmp_path / f"long{suffix}"
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4)) + b"\x00"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(DataIntegrityError, match=r"is longer than its header declares: "
                       r"expected exactly 12 payload bytes for shape \(3, 4\)") as info:
        read_idx(path)
    assert f"'{path}'" in str(info.value)


def test_missing_file_in_directory_names_it(raw_dir, tmp_path):
    directory = copy_dir(raw_dir, tmp_path / "incomplete", replace="y_test")
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte \(or "
                       r"t10k-labels-idx1-ubyte\.gz\)") as info:
        load_mnist(directory)
    assert str(directory) in str(info.value)


def test_read_idx_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"IDX file '.*nothing-here\.gz' not found"):
        read_idx(tmp_path / "nothing-here.gz")


def test_images_and_labels_must_match_in_number_even_without_verify(raw_dir, tmp_path, arrays):
    directory = copy_dir(raw_dir, tmp_path / "mismatch", replace="y_test")
    write_idx(arrays["y_test"][:9999], directory / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataIntegrityError, match="holds 10000 images but y_test .* holds 9999"):
        load_mnist(directory, verify=False)


def test_verify_false_admits_well_formed_non_canonical_data(raw_dir, tmp_path, arrays):
    directory = copy_dir(raw_dir, tmp_path / "edited", replace="x_test")
    edited = arrays["x_test"].copy()
    edited[0, 14, 14] = 255 - edited[0, 14, 14]
    write_idx(edited, directory / "t10k-images-idx3-ubyte")
    with pytest.raises(DataIntegrityError, match="is not the canonical MNIST"):
        load_mnist(directory)
    _, (x_test, _) = load_mnist(directory, verify=False)
    np.testing.assert_array_equal(x_test, edited)


# --- IDX encoding ---

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2), (0, 3)]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    values = np.arange(-7, -7 + int(np.prod(shape))) * 3.25
    array = values.astype(dtype).reshape(shape)
    path = tmp_path / f"array.idx{suffix}"
    write_idx(array, path)
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.dtype.isnative
    assert loaded.shape == shape
    np.testing.assert_array_equal(loaded, array)


def test_idx_bytes_layout_is_big_endian():
    array = np.array([[1, 2, 3], [256, -1, 0]], dtype=np.int16)
    assert idx_bytes(array) == (
        b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03"
        + b"\x00\x01\x00\x02\x00\x03\x01\x00\xff\xff\x00\x00"
    )


def test_idx_bytes_of_non_contiguous_and_big_endian_input(tmp_path):
    array = np.arange(12, dtype=">i4").reshape(3, 4).T
    write_idx(array, tmp_path / "transposed.idx")
    loaded = read_idx(tmp_path / "transposed.idx")
    assert loaded.dtype == np.int32 and loaded.dtype.isnative
    assert loaded.tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path):
    array = np.arange(10, dtype=np.int32)
    (tmp_path / "compressed.idx").write_bytes(gzip.compress(idx_bytes(array)))
    (tmp_path / "plain.gz").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)


def test_write_idx_gz_is_reproducible(tmp_path):
    array = np.arange(1000, dtype=np.float32)
    write_idx(array, tmp_path / "a.gz")
    write_idx(array, tmp_path / "b.gz")
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == idx_bytes(array)


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.float16])
def test_idx_bytes_rejects_types_without_idx_code(dtype):
    with pytest.raises(ValueError, match=r"IDX stores only uint8, int8, int16, int32, float32 "
                       rf"or float64 arrays; received {np.dtype(dtype)}\."):
        idx_bytes(np.zeros(3, dtype=dtype))


# --- splits ---


def test_holdout_split_sizes_and_views(mnist):
    splits = split_mnist(mnist)
    (x_train, y_train), (x_test, y_test) = mnist
    assert isinstance(splits, Splits) and splits.validation == "holdout"
    assert splits.x_train.shape == (55000, 28, 28) and splits.y_train.shape == (55000,)
    assert splits.x_val.shape == (5000, 28, 28) and splits.y_val.shape == (5000,)
    assert np.array_equal(splits.x_val, x_train[-5000:])
    assert np.array_equal(splits.y_val, y_train[-5000:])
    assert np.array_equal(splits.y_train, y_train[:55000])
    assert np.array_equal(splits.x_train[[0, -1]], x_train[[0, 54999]])
    assert splits.x_test is x_test and splits.y_test is y_test
    assert all(np.shares_memory(part, x_train) for part in (splits.x_train, splits.x_val))


def test_holdout_validation_size(mnist):
    splits = split_mnist(mnist, validation_size=10000)
    assert len(splits.x_train) == 50000 and len(splits.y_val) == 10000
    assert splits.y_val[:3].tolist() == mnist[0][1][50000:50003].tolist()


def test_test_set_as_validation(mnist):
    splits = split_mnist(mnist, validation="test", validation_size=123456)
    (x_train, _), (x_test, y_test) = mnist
    assert splits.validation == "test"
    assert splits.x_val is x_test and splits.y_val is y_test
    assert splits.x_train is x_train


def test_train_subset_takes_first_images(mnist):
    splits = split_mnist(mnist, train_subset=1000)
    assert len(splits.x_train) == 1000 and len(splits.x_val) == 5000
    assert splits.y_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert np.shares_memory(splits.x_train, mnist[0][0])


@pytest.mark.parametrize("size", [10, 1000, 54999])
def test_stratified_subset_is_exact_and_proportional(mnist, size):
    splits = split_mnist(mnist, train_subset=size, stratify=True)
    remaining = mnist[0][1][:55000]
    assert len(splits.x_train) == len(splits.y_train) == size
    expected = np.bincount(remaining) * size / len(remaining)
    assert np.all(np.abs(np.bincount(splits.y_train, minlength=10) - expected) < 1)


def test_stratified_subset_takes_first_of_each_class_in_order(mnist):
    splits = split_mnist(mnist, validation="test", train_subset=20, stratify=True)
    x_train, y_train = mnist[0]
    expected = np.sort(np.concatenate(
        [np.flatnonzero(y_train == label)[:2] for label in range(10)]
    ))
    assert splits.y_train.tolist() == y_train[expected].tolist()
    np.testing.assert_array_equal(splits.x_train, x_train[expected])


@pytest.mark.parametrize("kwargs, message", [
    ({"validation": "val"}, r"Unknown validation mode 'val'\. Available: holdout, test\."),
    ({"validation_size": 0}, r"validation_size must be an integer from 1 to 59999 "
                             r"\(the number of training images\); received 0\."),
    ({"validation_size": 60000}, r"validation_size .* received 60000\."),
    ({"validation_size": 5000.0}, r"validation_size .* received 5000\.0\."),
    ({"validation_size": True}, r"validation_size .* received True\."),
    ({"train_subset": 0}, r"train_subset must be an integer from 1 to 55000 "
                          r"\(the number of training images left\); received 0\."),
    ({"train_subset": 55001}, r"train_subset .* to 55000 .* received 55001\."),
    ({"validation": "test", "train_subset": 60001}, r"from 1 to 60000 .* received 60001\."),
    ({"train_subset": 9, "stratify": True},
     r"stratified train_subset needs at least one image per class: expected at least 10 "
     r"\(the number of classes\), received 9\."),
])
def test_split_argument_errors(mnist, kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_mnist(mnist, **kwargs)


def test_splits_are_frozen(mnist):
    splits = split_mnist(mnist)
    with pytest.raises(AttributeError):
        splits.validation = "test"


# --- import hygiene ---


def test_importing_bnlab_data_does_not_import_a_backend():
    code = (
        "import bnlab.data.mnist, bnlab.data.splits, sys; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow'; "
        "assert 'keras' not in sys.modules, 'keras'"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# binarized input (Ioffe & Szegedy 2015, sec. 4.1)


def test_binarize_images_thresholds_at_128_and_keeps_uint8():
    images = np.array([[0, 1, 127, 128, 200, 255]], dtype=np.uint8)
    binary = binarize_images(images)
    assert binary.dtype == np.uint8
    assert binary.tolist() == [[0, 0, 0, 255, 255, 255]]
    assert binarize_images(images, threshold=201).tolist() == [[0, 0, 0, 0, 0, 255]]


@pytest.mark.parametrize(
    "images, threshold, message",
    [
        (np.zeros(3, dtype=np.float32), 128, "expects raw uint8 pixels 0..255; received dtype float32"),
        (np.zeros(3, dtype=np.uint8), 0, "threshold must be an integer from 1 to 255; received 0"),
        (np.zeros(3, dtype=np.uint8), 0.5, "threshold must be an integer from 1 to 255; received 0.5"),
    ],
)
def test_binarize_images_rejects_bad_input(images, threshold, message):
    with pytest.raises(ValueError, match=message):
        binarize_images(images, threshold)


def test_binarize_splits_binarizes_every_image_set_and_no_label():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=40).astype(np.uint8)
    splits = binarize_splits(split_mnist(((images, labels), (images[:10], labels[:10])), validation_size=10))
    for array in (splits.x_train, splits.x_val, splits.x_test):
        assert set(np.unique(array)) <= {0, 255}
    np.testing.assert_array_equal(splits.x_train, np.where(images[:30] >= 128, 255, 0))
    np.testing.assert_array_equal(splits.y_train, labels[:30])
