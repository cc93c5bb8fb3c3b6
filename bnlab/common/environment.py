"""What a run ran on: versions, backend, machine and source commit, for metadata.json."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
from pathlib import Path

import keras

import bnlab


def environment_record() -> dict:
    """What this process runs on, for metadata.json and the benchmark's JSON.

    Returns:
        Versions of bnlab, Keras, the backend and Python, the machine (platform, CPU), and the
        git commit of the bnlab checkout (with whether it has uncommitted changes) when it is one.
    """
    backend = keras.backend.backend()
    return {
        "bnlab": bnlab.__version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _module_version(backend),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        **_git_state(),
    }


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
