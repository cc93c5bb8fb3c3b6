"""The per-epoch `loss` and `accuracy` columns are training-mode means over the steps since the previous row.

The evaluator calls `model.evaluate()` inside `fit`; evaluate shares its metric state with fit,
so before the fix the rows after a mid-epoch evaluation mixed inference-mode figures into the
training means (issue: the shipped Figure 1 run's `accuracy` alternated 1.000000 / 0.999633).
Checked against plain Keras on every installed backend, each in its own process.
"""

from pathlib import Path

import numpy as np
import pytest
from backend_scripts import BACKENDS, run_script

SCRIPT = Path(__file__).parent / "scripts" / "step_mode_logs.py"


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_mode_rows_average_training_steps_since_the_previous_row(backend):
    logs = run_script(SCRIPT, backend)
    bnlab_rows, expected = np.array(logs["bnlab"]), np.array(logs["plain_keras"])
    assert bnlab_rows.shape == expected.shape == (4, 2)
    # the second and fourth rows span an epoch boundary (12-step rows, 16-step epochs)
    np.testing.assert_allclose(bnlab_rows, expected, rtol=1e-5, atol=1e-6)
