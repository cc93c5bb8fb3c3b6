"""The training images' order (`training.data_order`, bnlab.training.order): a fresh permutation every
epoch, drawn from the seed, the same batches on every backend and in every training loop."""

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import bnlab
from bnlab.runs.folder import RunFolderError
from bnlab.training import fused
from bnlab.training.order import EpochOrder
from tests.backend_scripts import BACKENDS, run_script

SCRIPT = Path(__file__).parent / "scripts" / "data_order_backend.py"


def expected_first_rows(images: int, batch_size: int, epochs: int, seed: int) -> list[int]:
    order = EpochOrder(images, seed)
    return [int(order.rows(epoch)[start]) for epoch in range(epochs) for start in range(0, images, batch_size)]


def test_each_epoch_is_a_new_permutation_drawn_from_the_seed():
    order = EpochOrder(1000, seed=3)
    epochs = [order.rows(epoch) for epoch in range(3)]
    for rows in epochs:
        assert sorted(rows) == list(range(1000))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(EpochOrder(1000, seed=3).rows(1), epochs[1])  # reproducible
    assert not np.array_equal(EpochOrder(1000, seed=4).rows(0), epochs[0])  # another seed, another order
    repeated = EpochOrder(1000, seed=3, reshuffle=False)
    for epoch in range(3):
        np.testing.assert_array_equal(repeated.rows(epoch), epochs[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_trains_on_the_orders_batches(backend):
    result = run_script(SCRIPT, backend)
    assert result["backend"] == backend
    # 100 images in batches of 8: 13 batches an epoch, the last of 4
    assert result["first_rows"] == expected_first_rows(100, 8, 2, 7)


def test_fused_steps_train_on_the_orders_batches():
    """The fused fit (3 steps an execution) reports the last batch of each execution: those of the order."""
    from tests.scripts.data_order_backend import FirstLabel

    keras.utils.set_random_seed(7)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse", metrics=[FirstLabel()], steps_per_execution=3, jit_compile=True)
    seen = []
    callback = keras.callbacks.LambdaCallback(on_train_batch_end=lambda _, logs: seen.append(int(logs["first"])))
    fused.fit(model, np.zeros((100, 1), "float32"), np.arange(100, dtype="float32"), batch_size=8, epochs=2,
              callbacks=[callback], order=EpochOrder(100, 7))
    assert isinstance(model.train_function, fused.TrainFunction)
    every_batch = expected_first_rows(100, 8, 2, 7)
    assert seen == [every_batch[epoch * 13 + batch - 1] for epoch in range(2) for batch in (3, 6, 9, 12, 13)]


def test_a_run_saved_before_data_order_existed_resumes_only_in_kerass_order(tiny_run_copy, tiny_config):
    """Runs saved before the key trained in Keras's order: the folder reads as `keras`, and resuming it
    with today's default (reshuffled) would mix two orders in one run, so it is refused."""
    saved = tiny_run_copy / "config.yaml"
    saved.write_text("".join(line for line in saved.read_text().splitlines(keepends=True)
                             if not line.strip().startswith("data_order:")))
    assert bnlab.load_results(tiny_run_copy).config.training.data_order == "keras"
    refusal = r'differs in: training\.data_order \(the run folder\'s: "keras"; this config\'s: "reshuffled"\)'
    with pytest.raises(RunFolderError, match=refusal):
        bnlab.run_experiment(tiny_config, tiny_run_copy)
    kerass = bnlab.load_config(tiny_config.to_dict(), {"training.data_order": "keras"})
    bnlab.run_experiment(kerass, tiny_run_copy)  # all trials finished: nothing to train, accepted
    assert bnlab.load_results(tiny_run_copy).config.training.data_order == "keras"
    assert len(pd.read_csv(tiny_run_copy / "trials.csv")) == len(tiny_config.trials)


def test_a_new_run_saves_its_data_order(tiny_run):
    assert "data_order: reshuffled" in (tiny_run / "config.yaml").read_text()
    assert bnlab.load_results(tiny_run).config.training.data_order == "reshuffled"


def test_a_bad_data_order_is_refused_with_the_choices():
    with pytest.raises(bnlab.ConfigError, match=r"training\.data_order.*one of reshuffled, repeated, keras"):
        bnlab.load_config("tiny", {"training.data_order": "random"})
