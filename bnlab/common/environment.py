"""What a run ran on: versions, backend, machine and source commit, for metadata.json."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
from pathlib import Path

import keras

import bnlab
from bnlab.common.pages import huge_pages_on


def environment_record() -> dict:
    """What this process runs on, for metadata.json and the benchmark's JSON.

    Returns:
        Versions of bnlab, Keras, the backend, NumPy, pandas, SciPy and Python; the machine
        (platform, CPU, and `accelerator`: the GPUs the backend sees, names joined by ", ", or
        "none"); TensorFlow's XLA flags (`TF_XLA_FLAGS`: the persistent compile cache's folder,
        which makes a first epoch shorter when warm); whether NumPy asks for huge pages
        (`numpy_huge_pages`, `bnlab.common.pages`); and the git commit of the bnlab checkout
        (with whether it has uncommitted changes) when it is one.
    """
    backend = keras.backend.backend()
    return {
        "bnlab": bnlab.__version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _module_version(backend),
        **{name: _module_version(name) for name in ("numpy", "pandas", "scipy")},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "accelerator": accelerator(backend),
        "tf_xla_flags": os.environ.get("TF_XLA_FLAGS"),  # names the compile cache, when one is used
        "jax_compilation_cache_dir": os.environ.get("JAX_COMPILATION_CACHE_DIR"),
        "numpy_huge_pages": huge_pages_on(),  # bnlab.common.pages: off in bnlab's processes unless chosen
        **_git_state(),
    }


def accelerator(backend: str) -> str:
    """The accelerators `backend` trains on, e.g. "NVIDIA H200", or "none" (the CPU only).

    Args:
        backend: a Keras backend name; one bnlab cannot ask ("numpy", say) answers "none".

    Returns:
        The device names joined by ", "; "unknown (ERROR)" when asking the backend fails, so that
        a broken driver is recorded rather than stopping the run.
    """
    probe = {"tensorflow": _tensorflow_devices, "jax": _jax_devices, "torch": _torch_devices}.get(backend)
    try:
        names = probe() if probe is not None else []
    except Exception as error:  # any driver failure: recorded in metadata.json, not raised
        return f"unknown ({type(error).__name__}: {error})"
    return ", ".join(names) or "none"


def _tensorflow_devices() -> list[str]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]


def _jax_devices() -> list[str]:
    import jax

    return [device.device_kind for device in jax.devices() if device.platform != "cpu"]


def _torch_devices() -> list[str]:
    import torch

    if torch.cuda.is_available():
        return [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    apple = getattr(torch.backends, "mps", None)
    return ["Apple MPS"] if apple is not None and apple.is_available() else []


def _module_version(name: str) -> str | None:
    try:
        return getattr(importlib.import_module(name), "__version__", None)
    except ImportError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_state() -> dict:
    """The commit of the bnlab checkout this code runs from; empty when not a checkout."""
    source = Path(bnlab.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return {}
    try:
        commit = _git(source, "rev-parse", "HEAD")
        dirty = bool(_git(source, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"git_commit": commit, "git_dirty": dirty}


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()
