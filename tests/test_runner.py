"""The runner on the tiny config: tables, resume, determinism.

The tables are read from the session's shared tiny run (tests/conftest.py: `tiny` with no_bn and
bn_before_activation, 2 seeds); resume tests work on a copy of it; determinism trains its own trials.
"""

import json

import numpy as np
import pandas as pd
import pytest

import bnlab
from bnlab.common.columns import EPOCH_COLUMNS, TRAIN_EVAL_EXAMPLES
from bnlab.runs.folder import RunFolderError
from bnlab.runs.progress import NullProgress
from bnlab.training.trial import load_splits, train_trial

TIMING = ["train_seconds", "val_seconds", "train_eval_seconds"]


class TrialSpy(NullProgress):
    """Remembers which trials the runner trained."""

    def __init__(self):
        self.trained = []

    def trial_done(self, record):
        self.trained.append((record.variant, record.seed))


def test_every_trial_is_trained_once_in_config_order(tiny_trial_order):
    assert tiny_trial_order == (("no_bn", 0), ("bn_before_activation", 0), ("no_bn", 1), ("bn_before_activation", 1))


def test_tables_have_documented_columns_and_rows(tiny_results, tiny_config):
    results = tiny_results
    assert list(results.epochs.columns) == ["variant", "seed", *EPOCH_COLUMNS, TRAIN_EVAL_EXAMPLES]
    assert len(results.epochs) == 4 * tiny_config.training.epochs
    assert list(results.epochs["epoch"]) == [1, 2] * 4
    assert list(results.trials["variant"]) == ["no_bn", "bn_before_activation"] * 2
    assert len(results.trials) == 4 and set(results.trials["status"]) == {"complete"}
    assert list(results.targets.columns) == ["variant", "seed", "target", "reached", "epochs_to_target",
                                             "seconds_to_target", "steps_to_target"]
    assert len(results.targets) == 4 * len(tiny_config.targets)
    assert results.config == tiny_config
    assert results.metadata["status"] == "complete"
    assert results.metadata["backend"] == "tensorflow"
    assert results.metadata["keras"].startswith("3.")


def test_trial_figures_agree_with_epochs(tiny_results):
    results = tiny_results
    for _, trial in results.trials.iterrows():
        epochs = results.epochs[(results.epochs["variant"] == trial["variant"])
                                & (results.epochs["seed"] == trial["seed"])]
        assert trial["final_val_accuracy"] == pytest.approx(epochs["val_accuracy"].iloc[-1])
        assert trial["best_val_accuracy"] == pytest.approx(epochs["val_accuracy"].max())
        assert trial["final_accuracy_gap"] == pytest.approx(epochs["train_eval_accuracy"].iloc[-1]
                                                            - epochs["val_accuracy"].iloc[-1])
        # the test accuracy equals the share of saved predictions that are right (one inference pass gives
        # both; tests/test_study_speed.py checks it against Keras's evaluate), scored against MNIST's labels
        correct = results.predictions.correct(trial["variant"])[trial["seed"]]
        assert trial["test_accuracy"] == pytest.approx(correct.mean(), abs=1e-6)
        assert trial["steps_run"] == epochs["step"].iloc[-1] == 2 * 512 // 32
        assert (epochs[TIMING] > 0).all().all()
    labels = bnlab.load_mnist()[1][1]
    np.testing.assert_array_equal(results.predictions.labels, labels)
    params = results.trials.set_index("variant")["params_total"].to_dict()
    assert params == {"no_bn": 266_610, "bn_before_activation": 267_810}


def test_resume_skips_finished_trials(tiny_run_copy, tiny_config):
    run_dir = tiny_run_copy
    before = (run_dir / "trials" / "no_bn-seed0" / "trial.json").read_text()
    # an interrupted trial: its folder exists but its trial.json was never written
    (run_dir / "trials" / "bn_before_activation-seed1" / "trial.json").unlink()
    spy = TrialSpy()
    bnlab.run_experiment(tiny_config, run_dir, progress=spy)
    assert spy.trained == [("bn_before_activation", 1)]
    assert (run_dir / "trials" / "no_bn-seed0" / "trial.json").read_text() == before
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 4 and not trials.duplicated(["variant", "seed"]).any()
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert [s["trials_to_run"] for s in metadata["sessions"]] == [4, 1]


def test_resume_with_another_config_is_refused(tiny_run_copy, tiny_config):
    other = bnlab.load_config(tiny_config.to_dict(), {"training.epochs": 3})
    before = (tiny_run_copy / "metadata.json").read_text()
    refusal = (r"holds a run of a different config \(differs in: training\.epochs \(the run folder's: 2; this "
               r"config's: 3\)\)\. Resume only with the same config \(KEY=VALUE")
    with pytest.raises(RunFolderError, match=refusal):
        bnlab.run_experiment(other, tiny_run_copy)
    assert (tiny_run_copy / "metadata.json").read_text() == before  # refused before it started a session


def test_a_run_saved_before_train_eval_examples_existed_resumes_only_with_all_images(tiny_run_copy, tiny_config):
    """Runs saved before the key re-scored every training image at each evaluation: resuming them with
    the subset default would mix the two in one run, so the folder reads as `null` (all images)."""
    for table in [tiny_run_copy / "epochs.csv", *tiny_run_copy.glob("trials/*/epochs.csv")]:  # as they were
        pd.read_csv(table).drop(columns="train_eval_examples").to_csv(table, index=False)
    (tiny_run_copy / "trials" / "no_bn-seed1" / "trial.json").unlink()  # one trial left to train
    assert tiny_config.evaluation.train_eval_examples == 10_000  # today's default
    refusal = r"differs in: evaluation\.train_eval_examples \(the run folder's: null; this config's: 10000\)"
    with pytest.raises(RunFolderError, match=refusal):
        bnlab.run_experiment(tiny_config, tiny_run_copy)
    assert bnlab.load_results(tiny_run_copy).config.evaluation.train_eval_examples is None
    every_image = bnlab.load_config(tiny_config.to_dict(), {"evaluation.train_eval_examples": None})
    spy = TrialSpy()
    bnlab.run_experiment(every_image, tiny_run_copy, progress=spy)
    assert spy.trained == [("no_bn", 1)]
    epochs = pd.read_csv(tiny_run_copy / "epochs.csv")
    assert epochs["train_eval_examples"].isna().sum() == 3 * len(epochs) // 4  # the three older trials
    assert bnlab.load_results(tiny_run_copy).config.evaluation.train_eval_examples is None  # still as made


def test_same_seed_gives_identical_epoch_metrics(tiny_config):
    splits = load_splits(tiny_config, None)
    variant = tiny_config.variants[1]
    first = train_trial(tiny_config, variant, 0, splits).epochs.drop(columns=TIMING)
    second = train_trial(tiny_config, variant, 0, splits).epochs.drop(columns=TIMING)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    other_seed = train_trial(tiny_config, variant, 1, splits).epochs.drop(columns=TIMING)
    assert not np.allclose(first["loss"], other_seed["loss"])
