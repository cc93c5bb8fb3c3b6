"""Which Keras backends can run here; imports no Keras, so the CLI can check before choosing one."""

from __future__ import annotations

import importlib.util

_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def missing_backend(backend: str) -> str | None:
    """One line saying how to install `backend` when it cannot be imported here, else None."""
    if importlib.util.find_spec(_MODULES[backend]) is not None:
        return None
    if backend == "tensorflow":
        return "backend: TensorFlow is not installed; pip install tensorflow"
    return f"backend: {backend!r} is not installed; install it with pip install 'bnlab[{backend}]'"
