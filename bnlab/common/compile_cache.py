"""Persistent caches of TensorFlow's and JAX's XLA executables, so that a network compiled once is not compiled again.

Every trial builds a new Keras model, and TensorFlow compiles its XLA functions again even when
an earlier trial, or an earlier run, compiled the same computation: 1.5 to 2.6 s a network for
the MLP's fused training steps on a 2-core CPU (docs/speed.md). TensorFlow can keep the compiled
executables on disk (`--tf_xla_persistent_cache_directory`) and load them instead when the same
computation comes again (in this process, another trial, or a later run); JAX has the same
(`JAX_COMPILATION_CACHE_DIR`). The figures are the same, bit for bit (a test compares a run with
the cache warm and one that compiled, on each backend).

`enable_compile_cache` sets both before the libraries start; the CLI and its worker processes call
it (`bnlab.common.startup`), a user's own Python code does not unless it calls it. The folder holds
one subfolder per library version, CPU, NVIDIA GPUs and XLA flags, so that no executable is loaded
on a machine, or under compiler flags, it was not compiled for (a home folder shared by a cluster's
machines, a benchmark's `XLA_FLAGS` settings).

TensorFlow (2.21) writes an entry to a temporary name and renames it, so a reader never sees a
half-written one; but an entry cut short some other way (a cache folder copied in part, an older
TensorFlow that wrote in place) would fail every later training that loads it, so
`enable_compile_cache` deletes such entries first, and the temporary files of writers killed long
ago (`drop_incomplete_entries`).

`BNLAB_COMPILE_CACHE` chooses: unset, `~/.cache/bnlab/xla` (`$XDG_CACHE_HOME` if set); a folder; or
`off`. A `TF_XLA_FLAGS` that already names a persistent cache folder, or a set `JAX_COMPILATION_CACHE_DIR`,
is left as it is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import time
from pathlib import Path

VARIABLE = "BNLAB_COMPILE_CACHE"
FLAG = "--tf_xla_persistent_cache_directory"
JAX_FOLDER = "JAX_COMPILATION_CACHE_DIR"
JAX_MIN_SECONDS = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
OFF = ("off", "0", "false", "no", "none")


def enable_compile_cache() -> dict[str, Path]:
    """Point TensorFlow's and JAX's persistent caches at bnlab's cache folders; the folders set, by library.

    Call before TensorFlow and JAX are imported: they read these settings once, at their start.
    A library that is not installed, or whose cache the user already chose, is left out; {} when off.
    """
    folders = {}
    if FLAG not in os.environ.get("TF_XLA_FLAGS", ""):  # else the user chose a folder
        folders["tensorflow"] = cache_folder("tensorflow")
    if JAX_FOLDER not in os.environ:
        folders["jax"] = cache_folder("jax")
    folders = {library: folder for library, folder in folders.items() if folder is not None}
    if "tensorflow" in folders:
        drop_incomplete_entries(folders["tensorflow"])
        os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {FLAG}={folders['tensorflow']}".strip()
    if "jax" in folders:
        os.environ[JAX_FOLDER] = str(folders["jax"])
        # JAX keeps only compilations of 1 s or more by default; the MLP's take 0.1 to 1 s each
        os.environ.setdefault(JAX_MIN_SECONDS, "0")
    return folders


def cache_folder(library: str = "tensorflow") -> Path | None:
    """The folder for this machine's and library's executables (created); None when off, unwritable or not installed."""
    choice = os.environ.get(VARIABLE, "").strip()
    if choice.lower() in OFF or _version(library) is None:
        return None
    root = Path(choice).expanduser() if choice else _default_root()
    folder = root / machine_key(library)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return None
    return folder


def machine_key(library: str = "tensorflow") -> str:
    """What an executable depends on besides its computation: the library's version, the CPU, the GPUs, XLA's flags."""
    version = _version(library)
    parts = [library, str(version), platform.machine(), _cpu_description(), _gpu_description(),
             os.environ.get("XLA_FLAGS", ""), os.environ.get("TF_XLA_FLAGS", "") if library == "tensorflow" else ""]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"{_SHORT[library]}{version}-{platform.machine()}-{digest}"


_SHORT = {"tensorflow": "tf", "jax": "jax"}
# the fields of TensorFlow's XlaSerializedCacheEntry: key, hlo_module, executable
_ENTRY_FIELDS = {1, 2, 3}
# a temporary file TensorFlow has not renamed for an hour was left by a killed writer (a write takes < 1 s)
STALE_SECONDS = 3600


def drop_incomplete_entries(folder: Path) -> list[Path]:
    """Delete TensorFlow's cache entries in `folder` that are cut short, and stale temporary files; those deleted.

    A load of an entry cut short fails the training with "OutOfRangeError: Read less bytes than
    requested" (which Keras reports as the data running out) instead of compiling again. An entry
    is complete when its protobuf fields (checked by their tags and lengths, not decoded) fill the
    file and include all three of an entry's fields. TensorFlow writes each entry to
    `ENTRY.pbSUFFIX.tmp` and renames it; a process killed while writing leaves that file behind,
    deleted here once it is older than `STALE_SECONDS` (a younger one may be another process's write).
    """
    dropped = []
    for path in sorted(folder.glob("*.pb")) + sorted(folder.glob("*.tmp")):
        try:
            if _droppable(path):
                path.unlink()
                dropped.append(path)
        except OSError:  # gone meanwhile, or not ours to delete: TensorFlow decides
            continue
    return dropped


def _droppable(path: Path) -> bool:
    """An entry cut short, or a temporary file no writer has touched for `STALE_SECONDS`."""
    if path.suffix == ".tmp":
        return time.time() - path.stat().st_mtime > STALE_SECONDS
    return not _complete(path)


def _complete(path: Path) -> bool:
    """Whether the file is a whole serialized message whose top-level fields include `_ENTRY_FIELDS`
    (read by its tags and lengths only: the executable inside is not read)."""
    size, fields = path.stat().st_size, set()
    with path.open("rb") as file:
        while file.tell() < size:
            key, length = _varint(file), _varint(file)
            if key is None or key & 7 != 2 or length is None:  # every field of an entry is length-delimited
                return False
            if file.tell() + length > size:
                return False
            fields.add(key >> 3)
            file.seek(length, os.SEEK_CUR)
    return _ENTRY_FIELDS <= fields


def _varint(file) -> int | None:
    """The base-128 varint at the file's position, read; None when the file ends inside it."""
    value = 0
    for shift in range(0, 70, 7):
        byte = file.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
    return None


def _version(library: str) -> str | None:
    """The installed version of the library (jax: with jaxlib's, which compiles), or None."""
    try:
        version = importlib.metadata.version(library)
        return f"{version}-jaxlib{importlib.metadata.version('jaxlib')}" if library == "jax" else version
    except importlib.metadata.PackageNotFoundError:
        return None


def _default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "bnlab" / "xla"


def _cpu_description() -> str:
    """The CPU's model and instruction-set flags (Linux), else what `platform` knows of it."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")  # x86 and ARM names
    lines = [line for line in text.splitlines() if line.split(":")[0].strip() in wanted]
    return "\n".join(dict.fromkeys(lines))  # one copy per distinct line: every core repeats them


def _gpu_description() -> str:
    """The NVIDIA GPUs' models as the Linux driver lists them (read without starting TensorFlow); "" if none."""
    files = sorted(Path("/proc/driver/nvidia/gpus").glob("*/information"))
    return "\n".join(file.read_text(errors="replace") for file in files)
