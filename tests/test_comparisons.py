"""Paired comparisons and claims (bnlab.analysis.comparisons), on synthetic runs checked against scipy.

Each run folder holds a trials table with chosen per-seed figures (and, where a test needs them,
per-example test predictions); every number is recomputed here independently of bnlab.
"""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats

from bnlab.analysis import significance
from bnlab.analysis.comparisons import evaluate, figure_values, higher_is_better, seed_plan
from bnlab.config import ClaimConfig, load_config
from bnlab.report.tables import claims_markdown, comparison_markdown
from bnlab.runs import predictions
from bnlab.runs.results import load_results

PAIR = [("bn_input", "no_bn")]
BASELINE = np.array([0.910, 0.915, 0.920, 0.930])


def write_run(folder, figures, claims=(), analysis=None, steps=None, statuses=None, epochs_run=None):
    """A run with `figures[variant][figure]` per seed; `steps`: evaluations every `steps` steps (10 of them)."""
    seeds = len(next(iter(next(iter(figures.values())).values())))
    training = ({"steps": 10 * steps, "eval_every_steps": steps, "steps_per_execution": 10} if steps else
                {"epochs": 10})
    config = {"name": "synthetic", "description": "Chosen numbers.", "variants": list(figures), "seeds": seeds,
              "dataset": {"validation_size": 256, "train_subset": 500}, "targets": [0.9], "claims": list(claims),
              "training": {**training, "batch_size": 50, "optimizer": {"name": "sgd", "learning_rate": 0.1}},
              "analysis": analysis or {}}
    trials, epochs = [], []
    for variant, columns in figures.items():
        for seed in range(seeds):
            status = (statuses or {}).get((variant, seed), "complete")
            run = (epochs_run or {}).get((variant, seed), 10)
            trials.append({"variant": variant, "seed": seed, "status": status, "epochs_run": run,
                           **{figure: values[seed] for figure, values in columns.items()}})
            epochs += [{"variant": variant, "seed": seed, "epoch": e, **({"step": e * steps} if steps else {})}
                       for e in range(1, run + 1)]
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metadata.json").write_text(json.dumps({"status": "complete"}))
    pd.DataFrame(trials).to_csv(folder / "trials.csv", index=False)
    pd.DataFrame(epochs).to_csv(folder / "epochs.csv", index=False)
    return folder


def accuracy_run(tmp_path, differences, **options):
    accuracy = {"no_bn": {"test_accuracy": BASELINE}, "bn_input": {"test_accuracy": BASELINE + differences}}
    return load_results(write_run(tmp_path / "run", accuracy, **options))


def row_of(table, figure="test_accuracy"):
    return table[table["figure"] == figure].iloc[0]


# the paired difference, its interval and p


def test_paired_difference_interval_and_p_are_scipys_paired_t_test(tmp_path):
    differences = np.array([0.020, 0.012, 0.031, 0.018])
    row = row_of(evaluate(accuracy_run(tmp_path, differences), PAIR, ["test_accuracy"]).comparisons)
    expected = scipy_stats.ttest_rel(BASELINE + differences, BASELINE)
    interval = expected.confidence_interval(0.95)
    assert row["n"] == 4
    assert row["mean"] == pytest.approx(differences.mean(), abs=1e-12)
    assert row["std"] == pytest.approx(differences.std(ddof=1), abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), abs=1e-12)
    assert row["p_difference"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert row["p_difference_holm"] == row["p_difference"]  # a family of one
    assert np.isnan(row["p_equivalence"]) and np.isnan(row["mcnemar_p"]) and np.isnan(row["bootstrap_low"])


def test_pairs_are_matched_by_seed_and_a_missing_figure_leaves_its_pair_out(tmp_path):
    differences = np.array([0.02, 0.01, np.nan, 0.03])
    row = row_of(evaluate(accuracy_run(tmp_path, differences), PAIR, ["test_accuracy"]).comparisons)
    assert row["n"] == 3 and row["mean"] == pytest.approx(0.02, abs=1e-12)


def test_a_diverged_trial_counts_with_its_recorded_figures(tmp_path):
    differences = np.array([0.02, 0.01, 0.098 - 0.920, 0.03])  # seed 2 diverged at chance accuracy
    results = accuracy_run(tmp_path, differences, statuses={("bn_input", 2): "diverged"})
    row = row_of(evaluate(results, PAIR, ["test_accuracy"]).comparisons)
    assert row["n"] == 4 and row["mean"] == pytest.approx(differences.mean(), abs=1e-12)


# verdicts: direction, equivalence, Holm


@pytest.mark.parametrize("figure, higher", [
    ("test_accuracy", True), ("best_val_accuracy", True), ("final_accuracy_gap", False), ("epochs_to_0.98", False),
    ("steps_to_0.9", False), ("seconds_to_0.97", False), ("steady_epoch_seconds", False), ("final_loss_gap", False),
])
def test_which_direction_is_better(figure, higher):
    assert higher_is_better(figure) is higher


def test_lower_is_better_figures_turn_a_smaller_value_into_better(tmp_path):
    lower = np.array([-1.0, -1.2, -0.9, -1.1])
    figures = {"no_bn": {"test_accuracy": BASELINE, "final_accuracy_gap": np.full(4, 0.03), "epochs_to_0.9": [5] * 4,
                         "steady_epoch_seconds": np.full(4, 2.0)},
               "bn_input": {"test_accuracy": BASELINE + lower / 100, "final_accuracy_gap": 0.03 + lower / 100,
                            "epochs_to_0.9": 5 + 2 * lower, "steady_epoch_seconds": 2.0 - lower}}
    results = load_results(write_run(tmp_path / "run", figures))
    table = evaluate(results, PAIR, list(figures["no_bn"])).comparisons
    assert dict(zip(table["figure"], table["verdict"])) == {
        "test_accuracy": "worse", "final_accuracy_gap": "better", "epochs_to_0.9": "better",
        "steady_epoch_seconds": "worse"}


def test_tost_calls_a_difference_inside_the_margin_equivalent(tmp_path):
    differences = np.array([0.0005, -0.0003, 0.0001, 0.0002])
    results = accuracy_run(tmp_path, differences, analysis={"equivalence_margin": 0.003})
    row = row_of(evaluate(results, PAIR, ["test_accuracy", "steady_epoch_seconds"]).comparisons)
    expected = max(scipy_stats.ttest_1samp(differences, -0.003, alternative="greater").pvalue,
                   scipy_stats.ttest_1samp(differences, 0.003, alternative="less").pvalue)
    assert row["margin"] == 0.003 and row["p_equivalence"] == pytest.approx(expected, rel=1e-9)
    assert row["verdict"] == "equivalent"


def test_without_a_margin_nothing_is_equivalent(tmp_path):
    row = row_of(evaluate(accuracy_run(tmp_path, np.array([0.0005, -0.0003, 0.0001, 0.0002])), PAIR,
                          ["test_accuracy"]).comparisons)
    assert pd.isna(row["margin"]) and np.isnan(row["p_equivalence"]) and row["verdict"] == "inconclusive"


def test_a_clear_difference_beyond_the_margin_is_better_not_equivalent(tmp_path):
    results = accuracy_run(tmp_path, np.array([0.020, 0.012, 0.031, 0.018]), analysis={"equivalence_margin": 0.003})
    assert row_of(evaluate(results, PAIR, ["test_accuracy"]).comparisons)["verdict"] == "better"


CLAIMS = [
    {"id": "input_higher", "statement": "BN on the input raises test accuracy", "source": "Paper A, Fig. 1",
     "metric": "test_accuracy", "variant": "bn_input", "baseline": "no_bn", "expect": "higher"},
    {"id": "input_sooner", "statement": "BN on the input reaches 90% sooner", "source": "Paper B, sec. 2",
     "metric": "epochs_to_0.9", "variant": "bn_input", "baseline": "no_bn", "expect": "lower"},
    {"id": "after_same", "statement": "BN after the activation changes nothing", "source": "Paper C",
     "metric": "test_accuracy", "variant": "bn_after_activation", "baseline": "no_bn", "expect": "equivalent",
     "margin": 0.003},
    {"id": "after_higher", "statement": "BN after the activation raises test accuracy", "source": "Paper D",
     "metric": "test_accuracy", "variant": "bn_after_activation", "baseline": "no_bn", "expect": "higher",
     "margin": 0.003},
    {"id": "after_lower_noisy", "statement": "BN after the activation lowers the gap", "source": "Paper E",
     "metric": "final_accuracy_gap", "variant": "bn_after_activation", "baseline": "no_bn", "expect": "lower"},
]


@pytest.fixture
def claimed(tmp_path):
    return claimed_run(tmp_path)


def claimed_run(tmp_path):
    """A run with `CLAIMS`. bn_input: clearly more accurate but slower to 90%; bn_after_activation: equal
    accuracy, noisy gap."""
    noise = np.array([0.0005, -0.0003, 0.0001, 0.0002])
    figures = {"no_bn": {"test_accuracy": BASELINE, "epochs_to_0.9": [3, 3, 4, 3], "final_accuracy_gap": [0.02] * 4},
               "bn_after_activation": {"test_accuracy": BASELINE + noise, "epochs_to_0.9": [3, 3, 4, 3],
                                       "final_accuracy_gap": [0.03, 0.01, 0.025, 0.012]},
               "bn_input": {"test_accuracy": BASELINE + [0.020, 0.018, 0.023, 0.019],
                            "epochs_to_0.9": [6, 5, 7, 6], "final_accuracy_gap": [0.02] * 4}}
    return load_results(write_run(tmp_path / "run", figures, claims=CLAIMS))


def test_claim_verdicts_hold_fail_or_stay_inconclusive(claimed):
    claims = evaluate(claimed, [], []).claims
    assert dict(zip(claims["id"], claims["claim_verdict"])) == {
        "input_higher": "holds", "input_sooner": "does not hold", "after_same": "holds",
        "after_higher": "does not hold", "after_lower_noisy": "inconclusive"}
    assert dict(zip(claims["id"], claims["verdict"]))["input_sooner"] == "worse"  # more epochs is worse


def test_holm_corrects_over_comparisons_and_claims_together(claimed):
    evaluation = evaluate(claimed, PAIR, ["test_accuracy", "final_accuracy_gap"])
    assert evaluation.family == 7  # 2 comparisons + 5 claims
    table = pd.concat([evaluation.comparisons, evaluation.claims])
    raw = table["p_difference"].to_numpy()
    order = np.argsort(raw, kind="stable")
    expected = np.empty(7)
    expected[order] = np.minimum(np.maximum.accumulate((7 - np.arange(7)) * raw[order]), 1)
    assert table["p_difference_holm"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_claims_table_shows_each_claim_with_its_source_and_verdict(claimed):
    text = claims_markdown(claimed, evaluate(claimed, [], []))
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    assert len(rows) == 5
    assert rows[0].startswith("| **input_higher**: BN on the input raises test accuracy (Paper A, Fig. 1) | bn_input "
                              "vs no_bn, expected higher | test_accuracy | 4 | +0.0200 [")
    assert rows[0].endswith("| **holds** |")
    assert rows[1].endswith("| **does not hold** |") and "(Paper B, sec. 2)" in rows[1]
    assert "Holm-corrected over the report's 5 tests" in text


def test_no_claims_no_claims_table(tmp_path):
    results = accuracy_run(tmp_path, np.array([0.02, 0.01, 0.03, 0.02]))
    assert claims_markdown(results, evaluate(results, PAIR, ["test_accuracy"])) == ""


def test_without_claims_the_claims_table_is_empty_with_its_columns(tmp_path):
    evaluation = evaluate(accuracy_run(tmp_path, np.array([0.02, 0.01, 0.03, 0.02])), PAIR, ["test_accuracy"])
    assert evaluation.claims.empty
    assert {"id", "statement", "source", "claim_verdict", "verdict", "p_difference_holm"} <= set(evaluation.claims)
    assert "id" not in evaluation.comparisons  # a comparison has no claim's columns
    assert evaluation.comparisons.loc[0, "verdict"] == "better"


# unreached targets


def test_an_unreached_target_counts_one_evaluation_past_the_end_of_the_run(tmp_path):
    figures = {"no_bn": {"epochs_to_0.9": [4, None, None], "steps_to_0.9": [400, None, None]}}
    results = load_results(write_run(tmp_path / "run", figures, steps=100, statuses={("no_bn", 2): "diverged"},
                                     epochs_run={("no_bn", 2): 3}))
    assert results.trials["steps_run"].tolist() == [1000, 1000, 300]
    # seed 1 ran 10 evaluations; seed 2 diverged after 3 and never reaches: it counts past the longest run
    assert figure_values(results.trials, "no_bn", "epochs_to_0.9").tolist() == [4, 11, 11]
    assert figure_values(results.trials, "no_bn", "steps_to_0.9").tolist() == [400, 1100, 1100]


# per-example predictions: McNemar and the bootstrap over seeds and test images


def predicted_for(labels, right):
    return np.where(right, labels, (labels + 1) % 10).astype(np.uint8)


def test_mcnemar_and_bootstrap_come_from_the_saved_predictions(tmp_path):
    labels = np.arange(200) % 10
    rows, correct = [], {}
    for seed in range(3):  # bn_input alone right on 10 + seed images, no_bn alone right on 3
        baseline = np.arange(200) >= 20
        variant = baseline.copy()
        variant[: 10 + seed] = True
        variant[190:193] = False
        correct[seed] = (variant, baseline)
        rows += [("no_bn", seed, predicted_for(labels, baseline)), ("bn_input", seed, predicted_for(labels, variant))]
    accuracy = {v: {"test_accuracy": [correct[s][i].mean() for s in range(3)]} for i, v in ((1, "no_bn"),
                                                                                         (0, "bn_input"))}
    folder = write_run(tmp_path / "run", accuracy, analysis={"bootstrap_resamples": 200})
    (folder / predictions.FILE_NAME).write_bytes(predictions.to_bytes(
        variant=np.array([r[0] for r in rows]), seed=np.array([r[1] for r in rows]),
        predicted=np.stack([r[2] for r in rows]), labels=labels.astype(np.uint8)))
    table = evaluate(load_results(folder), PAIR, ["test_accuracy", "steady_epoch_seconds"]).comparisons
    row = row_of(table)
    assert row["mcnemar_p"] == pytest.approx(scipy_stats.binomtest(33, 33 + 9, 0.5).pvalue, rel=1e-12)
    differences = np.stack([v.astype(float) - b.astype(float) for v, b in correct.values()])
    assert (row["bootstrap_low"], row["bootstrap_high"]) == significance.paired_bootstrap_interval(
        differences, 0.95, 200, seed=0, over="both")
    assert row["bootstrap_low"] < (33 - 9) / 600 < row["bootstrap_high"]
    assert np.isnan(row_of(table, "steady_epoch_seconds")["mcnemar_p"])  # accuracy only
    line = comparison_markdown(load_results(folder), evaluate(load_results(folder), PAIR, ["test_accuracy"]),
                               "no_bn").splitlines()[2]
    # per seed: bn_input alone right on 10 + seed images, no_bn alone on 3
    significant = sum(scipy_stats.binomtest(10 + seed, 13 + seed, 0.5).pvalue < 0.05 for seed in range(3))
    assert row["mcnemar_seeds"] == f"{significant}/3"
    assert (f"| [{row['bootstrap_low']:+.4f}, {row['bootstrap_high']:+.4f}] | {row['mcnemar_p']:.2g} "
            f"({significant}/3 seeds) |") in line


# how many seeds


def test_seed_plan_uses_the_spread_of_the_paired_differences(tmp_path):
    differences = np.array([0.020, 0.012, 0.031, 0.018])
    plan = seed_plan(accuracy_run(tmp_path, differences), PAIR, "test_accuracy", effect=0.005)
    std = differences.std(ddof=1)
    assert plan.loc[0, "std"] == pytest.approx(std, abs=1e-12) and plan.loc[0, "n"] == 4
    assert plan.loc[0, "seeds_needed"] == significance.seeds_for_power(std, 0.005, 0.8, 0.05)
    assert plan.loc[0, "seeds_needed"] > significance.seeds_for_power(std, 0.01, 0.8, 0.05)  # a smaller effect


def test_seed_plan_without_spread_or_pairs_needs_no_number(tmp_path):
    figures = {"no_bn": {"epochs_to_0.9": [3, 3, 4, 3]}, "bn_input": {"epochs_to_0.9": [4, 4, 5, 4]}}
    results = load_results(write_run(tmp_path / "run", figures))
    plan = seed_plan(results, PAIR, "epochs_to_0.9", effect=0.5)
    assert plan.loc[0, "std"] == 0 and plan.loc[0, "n"] == 4 and plan.loc[0, "seeds_needed"] is None
    plan = seed_plan(results, PAIR, "test_accuracy", effect=0.5)  # not recorded: no pairs
    assert plan.loc[0, "n"] == 0 and plan.loc[0, "seeds_needed"] is None


# one variant on two metrics: PreciseBN against moving-average validation accuracy


PRECISE = "final_val_accuracy_precise_bn"


def test_a_claim_on_two_metrics_of_one_variant_pairs_them_by_seed(tmp_path):
    moving = np.array([0.950, 0.955, 0.948, 0.960])
    gains = np.array([0.004, 0.006, 0.003, 0.007])  # mean 0.005, std sqrt(10e-6 / 3)
    figures = {"no_bn": {"test_accuracy": BASELINE, "final_val_accuracy": moving - 0.02, PRECISE: moving - 0.02},
               "bn_input": {"test_accuracy": BASELINE, "final_val_accuracy": moving, PRECISE: moving + gains}}
    labels = np.arange(20) % 10
    folder = write_run(tmp_path / "run", figures)
    (folder / predictions.FILE_NAME).write_bytes(predictions.to_bytes(  # predictions exist, but not per mode
        variant=np.repeat(["no_bn", "bn_input"], 4), seed=np.tile(np.arange(4), 2),
        predicted=np.stack([predicted_for(labels, np.arange(20) >= seed) for seed in range(8)]),
        labels=labels.astype(np.uint8)))
    results = load_results(folder)
    claims = (ClaimConfig("precise_beats_moving", "PreciseBN beats the moving averages", "Wu & Johnson 2021", PRECISE,
                          "bn_input", "bn_input", "higher", margin=0.003, baseline_metric="final_val_accuracy"),
              ClaimConfig("test_beats_val", "Test accuracy is lower than validation accuracy", "none",
                          "test_accuracy", "bn_input", "bn_input", "lower", baseline_metric="final_val_accuracy"))
    results = dataclasses.replace(results, config=dataclasses.replace(results.config, claims=claims))
    evaluation = evaluate(results, [], [])
    row = evaluation.claims.iloc[0]
    mean, error = 0.005, np.sqrt(10e-6 / 3) / 2  # the standard error of the mean of 4 differences
    t = scipy_stats.t(df=3)
    assert row["n"] == 4 and row["mean"] == pytest.approx(mean, abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((mean - t.ppf(0.975) * error,
                                                             mean + t.ppf(0.975) * error), abs=1e-12)
    p_difference = 2 * t.sf(mean / error)
    assert row["p_difference"] == pytest.approx(p_difference, rel=1e-9)
    assert row["p_equivalence"] == pytest.approx(t.cdf((mean - 0.003) / error), rel=1e-9)  # the upper side decides
    other = evaluation.claims.iloc[1]  # test accuracy against validation accuracy: no McNemar of a model with itself
    assert other["p_difference"] < p_difference / 2  # Holm over the two claims: the other is smaller, ours second
    assert evaluation.family == 2 and row["p_difference_holm"] == pytest.approx(p_difference, rel=1e-9)
    assert p_difference < 0.05 and (row["verdict"], row["claim_verdict"]) == ("better", "holds")
    assert other["mean"] == pytest.approx((BASELINE - moving).mean(), abs=1e-12)
    assert np.isnan(other["mcnemar_p"]) and other["mcnemar_seeds"] == "" and np.isnan(other["bootstrap_low"])
    rows = [line for line in claims_markdown(results, evaluation).splitlines() if line.startswith("| **")]
    assert "| bn_input vs bn_input (final_val_accuracy), expected higher | final_val_accuracy_precise_bn | 4 | " \
        "+0.0050 [" in rows[0]
    assert "| — | — |" in rows[1] and rows[1].endswith("| **holds** |")


def test_a_sign_tested_claim_counts_the_seeds_on_each_side_and_shows_the_median(tmp_path):
    # no_bn trains in 6 of 14 seeds and diverges in the others; BN trains in all: BN higher in every seed
    plain = np.r_[[0.95, 0.96, 0.955, 0.962, 0.958, 0.951], [0.10, 0.098, 0.29, 0.22, 0.11, 0.10, 0.2, 0.26]]
    plain[[1, 7]] = [0.97, 0.97]  # two more seeds where BN's lead is small
    bn = np.r_[[0.978, 0.981, 0.98, 0.979, 0.982, 0.977], [0.98] * 8]
    claim = {"statement": "BN trains at lr 1", "source": "Paper F", "metric": "final_val_accuracy",
             "variant": "bn_before_activation", "baseline": "no_bn", "expect": "higher"}
    figures = {"no_bn": {"final_val_accuracy": plain}, "bn_before_activation": {"final_val_accuracy": bn}}
    claims = [{**claim, "id": "by_t"}, {**claim, "id": "by_sign", "test": "sign"}]
    results = load_results(write_run(tmp_path / "run", figures, claims=claims))
    table = evaluate(results, [], []).claims.set_index("id")
    differences = bn - plain
    t_test = scipy_stats.ttest_1samp(differences, 0.0)
    assert table.loc["by_t", "p_difference"] == pytest.approx(t_test.pvalue)
    assert table.loc["by_sign", "p_difference"] == pytest.approx(2 / 2 ** 14)  # all 14 seeds on one side
    assert table.loc["by_sign", "median"] == np.median(differences) and table.loc["by_sign", "test"] == "sign"
    assert table.loc["by_sign", "claim_verdict"] == "holds"
    text = claims_markdown(results, evaluate(results, [], []))
    row = next(line for line in text.splitlines() if line.startswith("| **by_sign**"))
    assert f"| 14 | median {np.median(differences):+.4f} [" in row
    assert "Claims declared with `test: sign` (by_sign)" in text


def test_a_sign_claim_on_a_trained_run_reports_its_median_and_says_when_seeds_are_too_few(tiny_run_copy):
    config = yaml.safe_load((tiny_run_copy / "config.yaml").read_text())
    config["claims"] = [{"id": "signed", "statement": "BN ends higher", "source": "Paper G", "test": "sign",
                         "metric": "final_val_accuracy", "variant": "bn_before_activation", "baseline": "no_bn",
                         "expect": "higher"}]
    (tiny_run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    results = load_results(tiny_run_copy)
    evaluation = evaluate(results, [], [])
    (row,) = evaluation.claims.to_dict("records")
    trials = results.trials.set_index(["variant", "seed"])["final_val_accuracy"]
    differences = [trials["bn_before_activation", s] - trials["no_bn", s] for s in (0, 1)]
    assert row["median"] == pytest.approx(np.median(differences)) and row["n"] == 2
    assert row["claim_verdict"] == "inconclusive"  # two seeds: the sign test's p is at least 0.5
    assert f"| 2 | median {np.median(differences):+.4f} [too few seeds for an interval] |" in claims_markdown(
        results, evaluation)


def test_train_at_lr1_declares_its_claims_with_the_sign_test():
    config = load_config("train_at_lr1")
    assert [(c.id, c.test, c.at) for c in config.claims] == [("before_trains_at_lr1", "sign", {}),
                                                            ("after_trains_at_lr1", "sign", {})]
    assert len(config.seeds) >= 20 and config.training.optimizer.params["learning_rate"] == 1.0
