"""The IDX file format of the MNIST distribution: reading, writing and hashing arrays.

IDX (LeCun et al., "THE MNIST DATABASE", file formats section): two zero bytes, a type
code, the number of dimensions, big-endian uint32 sizes, then the big-endian payload.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np


class DataIntegrityError(ValueError):
    """Data on disk is corrupt, truncated, badly formed or not the canonical MNIST."""



_GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes (LeCun et al., "THE MNIST DATABASE", file formats section); payload is big-endian.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in _IDX_DTYPES.items()}
_IDX_TYPE_NAMES = "uint8, int8, int16, int32, float32 or float64"
# Deflate cannot expand data more than about 1032:1, so a gzip file can never hold a payload
# larger than this multiple of its own size; it bounds allocations driven by a corrupt header.
_DEFLATE_MAX_RATIO = 1032


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file, gzip-compressed or not.

    Compression is detected from the gzip magic bytes (1f 8b), not from the file name.

    Args:
        path: Path of the IDX file.

    Returns:
        A writable array in native byte order, with the shape and type the header declares.

    Raises:
        FileNotFoundError: If no file exists at `path`.
        DataIntegrityError: If the header is malformed, the payload is shorter or longer than
            the header declares, or the gzip stream is broken. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file '{path}' not found.")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _decode_idx(raw, path, compressed)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _decode_idx(stream, path, compressed)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise DataIntegrityError(
                f"IDX file '{path}' starts like gzip (1f 8b) but its gzip stream is broken: "
                f"{error}. Copy or download the file again."
            ) from error


def _decode_idx(stream, path: Path, compressed: bool) -> np.ndarray:
    """Reads the header and the payload of an open IDX stream."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
        raise DataIntegrityError(
            f"IDX file '{path}' has a bad header: expected two zero bytes, a type code "
            f"(08, 09, 0b, 0c, 0d or 0e) and a dimension count, received {magic.hex(' ')!r}. "
            "The file is not IDX data or is corrupt."
        )
    dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataIntegrityError(
            f"IDX file '{path}' is truncated inside its header: expected {ndim} dimensions, "
            f"received {len(dims_bytes)} of {4 * ndim} bytes."
        )
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    _check_capacity(path, compressed, 4 + 4 * ndim, shape, dtype, nbytes)
    payload = np.empty(nbytes, dtype=np.uint8)
    received = stream.readinto(payload)
    if received < nbytes:
        raise DataIntegrityError(_truncated_message(path, shape, dtype, nbytes, received))
    if stream.read(1):
        raise DataIntegrityError(
            f"IDX file '{path}' is longer than its header declares: expected exactly {nbytes} "
            f"payload bytes for shape {shape} of {dtype.name}, received more."
        )
    array = payload.view(dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _check_capacity(path, compressed, header_size, shape, dtype, nbytes) -> None:
    """Rejects a header that declares more payload than the file can hold, before allocating."""
    file_size = os.path.getsize(path)
    if compressed and nbytes > file_size * _DEFLATE_MAX_RATIO:
        raise DataIntegrityError(
            f"IDX file '{path}' is truncated or its header is corrupt: the header declares "
            f"shape {shape} of {dtype.name} ({nbytes} payload bytes), more than a "
            f"{file_size}-byte gzip file can hold."
        )
    if not compressed and nbytes > file_size - header_size:
        raise DataIntegrityError(
            _truncated_message(path, shape, dtype, nbytes, file_size - header_size)
        )


def _truncated_message(path, shape, dtype, nbytes, received) -> str:
    return (
        f"IDX file '{path}' is truncated: the header declares shape {shape} of {dtype.name} "
        f"({nbytes} payload bytes), received {received} bytes. Copy or download it again."
    )


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes an array in the IDX format: header, then the big-endian payload.

    Args:
        array: An array of type uint8, int8, int16, int32, float32 or float64.

    Returns:
        The bytes of the IDX file; `read_idx` decodes them back to `array`.

    Raises:
        ValueError: If the type has no IDX code, or the array has more than 255 dimensions
            or a dimension of 2**32 or more.
    """
    array = np.asarray(array)
    return _idx_header(array) + _big_endian(array).tobytes()


def write_idx(array: np.ndarray, path: str | os.PathLike, *, compresslevel: int = 9) -> None:
    """Writes an array as an IDX file, gzip-compressed when `path` ends with `.gz`.

    The gzip header carries no name and mtime 0, so the output depends only on the array.
    With the default level 9 it is byte-identical to the `.gz` files shipped in bnlab/mnist.

    Args:
        array: An array of type uint8, int8, int16, int32, float32 or float64.
        path: Destination file; overwritten if it exists.
        compresslevel: gzip level from 0 to 9; lower is faster and larger.

    Raises:
        ValueError: As `idx_bytes`.
    """
    data = idx_bytes(array)
    path = Path(path)
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0
        ) as stream:
            stream.write(data)
    else:
        path.write_bytes(data)


def _idx_header(array: np.ndarray) -> bytes:
    """Returns the IDX header (magic and dimensions) of an array."""
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(
            f"IDX stores only {_IDX_TYPE_NAMES} arrays; received {array.dtype}. "
            "Convert with `array.astype(...)` first."
        )
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise ValueError(
            "IDX stores at most 255 dimensions, each below 2**32; "
            f"received shape {array.shape}."
        )
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)


def _big_endian(array: np.ndarray) -> np.ndarray:
    """Returns the array C-contiguous and big-endian; a view when it already is."""
    return np.asarray(array, dtype=array.dtype.newbyteorder(">"), order="C")


def idx_sha256(array: np.ndarray) -> str:
    """Returns sha256(idx_bytes(array)) without building the encoded copy."""
    digest = hashlib.sha256(_idx_header(array))
    digest.update(_big_endian(array))
    return digest.hexdigest()
