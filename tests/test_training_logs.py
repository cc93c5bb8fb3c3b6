"""The per-epoch `loss` and `accuracy` columns are training-mode means over the steps since the previous row.

The evaluator calls `model.evaluate()` inside `fit`; evaluate shares its metric state with fit,
so before the fix the rows after a mid-epoch evaluation mixed inference-mode figures into the
training means (issue: the shipped Figure 1 run's `accuracy` alternated 1.000000 / 0.999633).
Checked against plain Keras on every installed backend, each in its own process.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parent / "scripts" / "step_mode_logs.py"
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(module) is None,
                                                        reason=f"{module} is not installed"))
            for name, module in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_mode_rows_average_training_steps_since_the_previous_row(backend):
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(SCRIPT)], env=environment, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = json.loads(done.stdout.strip().splitlines()[-1])
    bnlab_rows, expected = np.array(logs["bnlab"]), np.array(logs["plain_keras"])
    assert bnlab_rows.shape == expected.shape == (4, 2)
    # the second and fourth rows span an epoch boundary (12-step rows, 16-step epochs)
    np.testing.assert_allclose(bnlab_rows, expected, rtol=1e-5, atol=1e-6)
