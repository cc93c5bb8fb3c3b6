"""The Keras backends: which can run here, and the compile settings each can run.

Imports no Keras, so the CLI can check a backend before choosing it.
"""

from __future__ import annotations

from bnlab.common.extras import missing_extra

# TensorFlow is a dependency of bnlab; the other backends are extras of the same name.
_EXTRAS = {"tensorflow": None, "jax": "jax", "torch": "torch"}


def missing_backend(backend: str) -> str | None:
    """One line saying how to install `backend` when it is not installed here, else None.

    Only looks for the package: importing it would start it before the CLI chooses a backend.
    """
    problem = missing_extra(backend, _EXTRAS[backend], load=False)
    return None if problem is None else f"backend: {problem}"


def compile_settings(backend: str, steps_per_execution: int, jit_compile) -> dict:
    """`steps_per_execution` and `jit_compile` as `model.compile` on Keras's `backend` takes them.

    Keras's torch trainer takes one step per call and rejects more (the same steps), and its
    jit_compile (torch.compile) cost 35 s a trial here with no faster epoch: on torch, one step
    per call, eager. The other backends run the values given.
    """
    if backend == "torch":
        return {"steps_per_execution": 1, "jit_compile": False}
    return {"steps_per_execution": steps_per_execution, "jit_compile": jit_compile}
