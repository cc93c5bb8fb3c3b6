"""A persistent cache of TensorFlow's XLA executables, so that a network compiled once is not compiled again.

Every trial builds a new Keras model, and TensorFlow compiles its XLA functions again even when
an earlier trial, or an earlier run, compiled the same computation: 1.5 to 2.6 s a network for
the MLP's fused training steps on a 2-core CPU (docs/speed.md). TensorFlow can keep the compiled
executables on disk (`--tf_xla_persistent_cache_directory`) and load them instead when the same
computation comes again (in this process, another trial, or a later run); the figures are the same,
bit for bit (a test compares a run with the cache warm and one without).

`enable_compile_cache` sets that flag in `TF_XLA_FLAGS` before TensorFlow starts; the CLI and its
worker processes call it (`bnlab.common.startup`), a user's own Python code does not unless it calls
it. The folder holds one subfolder per TensorFlow version, CPU, NVIDIA GPUs and XLA flags, so that no
executable is loaded on a machine, or under compiler flags, it was not compiled for (a home folder
shared by a cluster's machines, a benchmark's `XLA_FLAGS` settings).

`BNLAB_COMPILE_CACHE` chooses: unset, `~/.cache/bnlab/xla` (`$XDG_CACHE_HOME` if set); a folder; or
`off`. A `TF_XLA_FLAGS` that already names a persistent cache folder is left as it is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from pathlib import Path

VARIABLE = "BNLAB_COMPILE_CACHE"
FLAG = "--tf_xla_persistent_cache_directory"
OFF = ("off", "0", "false", "no", "none")


def enable_compile_cache() -> Path | None:
    """Point TensorFlow's persistent XLA cache at bnlab's cache folder; the folder, or None when off.

    Call before TensorFlow is imported: TensorFlow reads `TF_XLA_FLAGS` once, at its start.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if FLAG in flags:  # the user chose a folder
        return None
    folder = cache_folder()
    if folder is None:
        return None
    os.environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={folder}".strip()
    return folder


def cache_folder() -> Path | None:
    """The folder for this machine's and TensorFlow's executables (created), or None when off or unwritable."""
    choice = os.environ.get(VARIABLE, "").strip()
    if choice.lower() in OFF:
        return None
    root = Path(choice).expanduser() if choice else _default_root()
    folder = root / machine_key()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return None
    return folder


def machine_key() -> str:
    """What an executable depends on besides its computation: TensorFlow's version, the CPU, the GPUs, XLA's flags."""
    try:
        tensorflow = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        tensorflow = "none"
    parts = [tensorflow, platform.machine(), _cpu_description(), _gpu_description(),
             os.environ.get("XLA_FLAGS", ""), os.environ.get("TF_XLA_FLAGS", "")]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"tf{tensorflow}-{platform.machine()}-{digest}"


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
