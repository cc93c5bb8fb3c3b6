"""configs/data_order.yaml cut to 512 images, 2 epochs and 2 seeds: both orders train from the seed's
weights on the same first epoch and part from the second; the report's claims compare them."""

import numpy as np
import pytest

import bnlab
from bnlab.config.grid import grid_label
from bnlab.report.write import evaluate_run

CUT = {"dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
       "training.epochs": 2, "training.steps_per_execution": 4, "seeds": [10, 11], "targets": [0.5]}
FIGURES = ["loss", "val_loss", "train_eval_loss"]


@pytest.fixture(scope="module")
def data_order_run(tmp_path_factory):
    config = bnlab.load_config("data_order", CUT)
    return bnlab.load_results(bnlab.run_experiment(config, tmp_path_factory.mktemp("data_order") / "run"))


def test_both_orders_share_the_first_epoch_and_part_from_the_second(data_order_run):
    epochs = data_order_run.epochs
    for base in ["no_bn", "bn_g4", "bn_g128"]:
        for seed in [10, 11]:
            repeated, reshuffled = (epochs[(epochs["variant"] == grid_label(base, {"training.data_order": order}))
                                           & (epochs["seed"] == seed)].sort_values("epoch")[FIGURES].to_numpy()
                                    for order in ("repeated", "reshuffled"))
            np.testing.assert_array_equal(repeated[0], reshuffled[0])  # epoch 1: the same weights, the same batches
            assert not np.allclose(repeated[1], reshuffled[1], rtol=1e-4)  # epoch 2: other batches


def test_each_claim_compares_one_network_in_the_two_orders(data_order_run):
    claims = evaluate_run(data_order_run).claims.set_index("id")
    assert list(claims.index) == ["reshuffling_helps_bn_g4", "reshuffling_helps_bn_g128",
                                  "order_does_not_matter_without_bn"]
    assert set(claims["claim_verdict"]) <= {"holds", "does not hold", "inconclusive", "equivalent"}
    assert (claims["n"] == 2).all()  # seed by seed: the same weights in both orders
    assert claims["variant"].str.endswith("data_order_reshuffled").all()
    assert claims["baseline"].str.endswith("data_order_repeated").all()
