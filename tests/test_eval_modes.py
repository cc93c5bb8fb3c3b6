"""Evaluation modes (PreciseBN, batch statistics), the discrepancy table and saved models of a run."""

import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest

import bnlab
from bnlab.common.columns import final_mode_accuracy, mode_column
from bnlab.config.evaluation import EvaluationConfig
from bnlab.models.population import DISCREPANCY_COLUMNS, precise_bn
from bnlab.training.eval_modes import ModeScorer, restored, score_with_batch_statistics
from bnlab.training.trial import load_splits, train_trial

MODES = ("precise_bn", "batch_statistics")


@pytest.fixture(scope="module")
def trained():
    """A small BN network after a few SGD steps, with its data."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x, y = rng.normal(2.0, 3.0, size=(96, 6)).astype("float32"), rng.integers(0, 3, size=96)
    model = bnlab.build_mlp(hidden_units=(5,), input_shape=(6,), num_classes=3, batch_norm="before_activation",
                            input_normalization="batch_norm", momentum=0.9)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model, x, y


def _statistics(model):
    return [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]


def test_precise_mode_equals_evaluating_a_copy_after_precise_bn(trained):
    model, x, y = trained
    before = _statistics(model)
    scores = ModeScorer(EvaluationConfig(modes=("precise_bn",), precise_bn_examples=64), x, 16, 32).score(model, x, y)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    precise_bn(copy, x[:64], batch_size=32)
    expected = copy.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert scores[mode_column("val_accuracy", "precise_bn")] == pytest.approx(expected["accuracy"], abs=1e-7)
    assert scores[mode_column("val_loss", "precise_bn")] == pytest.approx(expected["loss"], rel=1e-5)
    for old, new in zip(before, _statistics(model)):  # the trained model's statistics are put back
        np.testing.assert_array_equal(old, new)


def test_batch_statistics_mode_by_hand(trained):
    model, x, y = trained
    before = _statistics(model)
    with restored(model):
        scores = score_with_batch_statistics(model, x, y, 40)  # batches of 40, 40 and 16
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    probabilities = np.concatenate([keras.ops.convert_to_numpy(copy(x[i:i + 40], training=True))
                                    for i in (0, 40, 80)])
    loss = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, probabilities)).mean()
    assert scores["accuracy"] == pytest.approx(np.mean(probabilities.argmax(axis=1) == y), abs=1e-12)
    assert scores["loss"] == pytest.approx(float(loss), rel=1e-5)
    for old, new in zip(before, _statistics(model)):
        np.testing.assert_array_equal(old, new)


def test_modes_change_nothing_in_training():
    # renorm past its warm-up from the first step: r and d read the moving statistics at every step, so
    # a mode that left them changed after the first epoch's evaluation would change the second epoch
    schedule = {"renorm_warmup_steps": 0, "renorm_r_max_steps": 4, "renorm_d_max_steps": 4}
    config = bnlab.load_config("tiny", {"variants": [{"name": "renorm_before_activation", "overrides": schedule}],
                                        "training.epochs": 2, "training.jit_compile": False,
                                        "dataset.train_subset": 256})
    splits = load_splits(config)
    records = [train_trial(dataclasses.replace(config, evaluation=EvaluationConfig(modes=modes)),
                           config.trial_variants[0], 0, splits) for modes in ((), MODES)]
    plain, moded = (record.epochs for record in records)
    columns = ["loss", "accuracy", "val_loss", "val_accuracy", "train_eval_accuracy"]
    pd.testing.assert_frame_equal(plain[columns], moded[columns])
    assert records[0].summary["test_accuracy"] == records[1].summary["test_accuracy"]
    assert set(records[1].epochs.columns) - set(plain.columns) == {
        *(mode_column(f"val_{figure}", mode) for figure in ("loss", "accuracy") for mode in MODES), "modes_seconds"}


def test_a_run_records_every_mode(population_run):
    epochs = pd.read_csv(population_run / "epochs.csv")
    trials = pd.read_csv(population_run / "trials.csv").set_index("variant")
    for mode in MODES:
        assert epochs[mode_column("val_accuracy", mode)].between(0, 1).all()
        final = epochs.groupby(["variant", "seed"])[mode_column("val_accuracy", mode)].last()
        np.testing.assert_allclose(trials.reset_index().set_index(["variant", "seed"])[final_mode_accuracy(mode)],
                                   final.loc[trials.reset_index().set_index(["variant", "seed"]).index])
    # without BN the three evaluations are the same network
    no_bn = epochs[epochs["variant"] == "no_bn"]
    np.testing.assert_allclose(no_bn[mode_column("val_accuracy", "precise_bn")], no_bn["val_accuracy"], atol=1e-7)
    np.testing.assert_allclose(no_bn[mode_column("val_accuracy", "batch_statistics")], no_bn["val_accuracy"],
                               atol=1e-6)


def test_discrepancy_table_per_trial_and_layer(population_run):
    table = pd.read_csv(population_run / "bn_discrepancy.csv")
    assert list(table.columns) == ["variant", "seed", *DISCREPANCY_COLUMNS]
    assert set(table["variant"]) == {"bn_before_activation"}  # no_bn has no BN layer
    assert table.groupby("seed")["layer"].apply(list).tolist() == [["hidden_1_bn", "hidden_2_bn"]] * 2
    assert table["channels"].tolist() == [300, 100] * 2
    assert (table["variance_ratio_median"] > 0).all()
    results = bnlab.load_results(population_run)
    pd.testing.assert_frame_equal(results.discrepancy, table)


def test_saved_model_reloads_and_predicts_identically(population_run):
    results = bnlab.load_results(population_run)
    splits = load_splits(results.config)
    x_test = bnlab.preprocess_input("bn_before_activation", splits.x_test)
    model = keras.saving.load_model(population_run / "trials" / "bn_before_activation-seed1" / "model.keras")
    predicted = model.predict(x_test, batch_size=1024, verbose=0).argmax(axis=1)
    # the trained model's own test predictions, recorded by the run
    np.testing.assert_array_equal(predicted == splits.y_test, results.predictions.correct("bn_before_activation")[1])
    row = results.trials.set_index(["variant", "seed"]).loc[("bn_before_activation", 1)]
    assert np.mean(predicted == splits.y_test) == pytest.approx(row["test_accuracy"], abs=1e-6)


def test_mode_table_is_the_paired_seed_difference(population_run):
    from scipy import stats

    from bnlab.analysis.population import mode_table

    results = bnlab.load_results(population_run)
    table = mode_table(results).set_index("variant")
    trials = results.trials[results.trials["variant"] == "bn_before_activation"]
    differences = trials[final_mode_accuracy("precise_bn")] - trials["final_val_accuracy"]
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    row = table.loc["bn_before_activation"]
    assert row["seeds"] == 2
    np.testing.assert_allclose([row["precise_bn_minus_moving"], row["precise_bn_ci_low"], row["precise_bn_ci_high"]],
                               [differences.mean(), low, high], rtol=1e-9, atol=1e-12)
    assert row["moving_average"] == pytest.approx(trials["final_val_accuracy"].mean())


def test_report_has_the_population_section(population_run, tmp_path):
    import shutil

    run_dir = shutil.copytree(population_run, tmp_path / "run")
    report = bnlab.write_report(run_dir).read_text()
    assert "## BN's statistics at inference (Wu & Johnson 2021)" in report
    assert "![evaluation modes](figures/evaluation_modes.png)" in report
    assert (run_dir / "figures" / "evaluation_modes.png").stat().st_size > 10_000
    assert "hidden_2_bn" in report  # the discrepancy table
