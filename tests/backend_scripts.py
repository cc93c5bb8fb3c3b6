"""Running a test script once per installed Keras backend, each in its own process (KERAS_BACKEND is
read when Keras is first imported). Shared by the tests that compare backends."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# every Keras 3 backend that can train; one not installed here is skipped, not failed
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                        reason=f"{name} is not installed"))
            for name in ("tensorflow", "jax", "torch")]


def run_script(script, backend: str):
    """Runs `script` under `backend` and returns the JSON of its last stdout line (the test fails on an error)."""
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script)], env=environment, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
