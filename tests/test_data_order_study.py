"""configs/data_order.yaml cut to 512 images, 2 epochs and 2 seeds: both orders train from the seed's
weights on the same first epoch and part from the second; the report's claims compare them.
configs/data_order_fit.yaml trains the same networks the same way on other seeds: its claims are read
from the same cut run."""

import dataclasses

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


def test_data_order_fit_trains_what_data_order_trains_on_other_seeds():
    order, fit = (bnlab.load_config(name).to_dict() for name in ("data_order", "data_order_fit"))
    assert set(order["seeds"]).isdisjoint(fit["seeds"])  # a follow-up on fresh seeds
    different = {key for key in order if order[key] != fit[key]}
    assert different == {"name", "description", "seeds", "claims", "output_dir"}


def test_final_train_mode_accuracy_is_the_last_epochs_training_mode_figure(data_order_run):
    last = data_order_run.epochs.sort_values("epoch").groupby(["variant", "seed"]).last()["accuracy"]
    trials = data_order_run.trials.set_index(["variant", "seed"])["final_train_mode_accuracy"]
    np.testing.assert_array_equal(trials.sort_index().to_numpy(), last.sort_index().to_numpy())
    assert not np.allclose(trials.sort_index(), data_order_run.trials.set_index(["variant", "seed"])
                           ["final_train_eval_accuracy"].sort_index())  # not the inference-mode re-evaluation


def test_data_order_fit_claims_pair_each_network_with_itself(data_order_run):
    fit = bnlab.load_config("data_order_fit", CUT)
    claims = evaluate_run(dataclasses.replace(data_order_run, config=fit)).claims.set_index("id")
    assert list(claims.index) == ["repeated_fitted_in_training_mode_g4", "repeated_fitted_in_training_mode_g128",
                                  "not_fitted_in_inference_mode_g4", "training_mode_unaffected_without_bn"]
    assert (claims["n"] == 2).all()
    assert claims["variant"].str.endswith("data_order_repeated").all()
    assert claims["baseline"].str.endswith("data_order_reshuffled").all()
    metrics = ["final_train_mode_accuracy"] * 2 + ["final_train_eval_accuracy", "final_train_mode_accuracy"]
    assert list(claims["figure"]) == metrics
    trials = data_order_run.trials.set_index(["variant", "seed"])
    for claim in claims.itertuples():  # the difference is the two trials' figures, seed by seed
        difference = (trials.loc[claim.variant, claim.figure] - trials.loc[claim.baseline, claim.figure]).mean()
        assert claim.mean == pytest.approx(difference)
