"""The report's headline sentences (bnlab.report.findings), each on synthetic runs with a known answer.

Every run is built so that a wrong choice (the slowest variant, the lucky seed, the wrong set or
unit, smallest and largest swapped) gives a visibly different sentence. No training happens here.
"""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as scipy_stats

from bnlab.analysis import sweep
from bnlab.common.columns import epochs_to
from bnlab.report.findings import accuracy_finding, cost_finding, findings, gap_finding, target_finding
from bnlab.report.write import evaluate_run, render_report
from bnlab.runs.results import load_results

TRAINING = {"epochs": 5, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.01}}
STEP_TRAINING = {"steps": 1000, "eval_every_steps": 100, "steps_per_execution": 10, "batch_size": 60,
                 "optimizer": {"name": "sgd", "learning_rate": 0.5}}
FIGURE_1_VARIANTS = [{"name": "no_bn", "label": "without_bn"}, {"name": "bn_before_activation", "label": "with_bn"}]


def config(variants, seeds=3, targets=(0.9,), **changes):
    return {"name": "synthetic", "description": "Chosen numbers, no training.",
            "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
            "variants": list(variants), "seeds": seeds, "training": TRAINING, "targets": list(targets), **changes}


def trial(variant, seed, reach, accuracy=0.9, seconds=2.0, gap=0.01, status="complete"):
    """One trial: `reach` maps a target to the epoch (step mode: evaluation) that reached it, or None."""
    return {"variant": variant, "seed": seed, "status": status, "test_accuracy": accuracy,
            "steady_epoch_seconds": seconds, "final_accuracy_gap": gap, "reach": reach}


def write_run(folder, run_config, trials):
    """A run folder with these trials; in step mode each evaluation is `eval_every_steps` steps."""
    interval = run_config["training"].get("eval_every_steps")
    evaluations = run_config["training"]["steps"] // interval if interval else run_config["training"]["epochs"]
    trial_rows, target_rows, epoch_rows = [], [], []
    for row in trials:
        row = dict(row, epochs_run=evaluations, best_val_accuracy=0.95, final_val_accuracy=0.95, final_loss_gap=0.02)
        for target, epoch in row.pop("reach").items():
            target_rows.append({"variant": row["variant"], "seed": row["seed"], "target": target,
                                "reached": epoch is not None, "epochs_to_target": epoch,
                                "steps_to_target": epoch * interval if interval and epoch else None})
            row[epochs_to(target)] = epoch
        trial_rows.append(row)
        epoch_rows += [{"variant": row["variant"], "seed": row["seed"], "epoch": epoch, "loss": 0.5, "accuracy": 0.9,
                        "val_loss": 0.3, "val_accuracy": 0.9, "train_eval_loss": 0.2, "train_eval_accuracy": 0.9,
                        **({"step": epoch * interval} if interval else {})} for epoch in range(1, evaluations + 1)]
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(run_config))
    (folder / "metadata.json").write_text(json.dumps({"status": "complete"}))
    for name, rows in (("trials", trial_rows), ("epochs", epoch_rows), ("targets", target_rows)):
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return load_results(folder)


def reaching(tmp_path, epochs_by_variant, targets=(0.9,), **changes):
    """A run in which variant v's seed i reaches every target at epochs_by_variant[v][i] (None: never)."""
    seeds = len(next(iter(epochs_by_variant.values())))
    trials = [trial(v, seed, {t: epochs[seed] for t in targets}) for v, epochs in epochs_by_variant.items()
              for seed in range(seeds)]
    return write_run(tmp_path / "run", config(epochs_by_variant, seeds, targets, **changes), trials)


# which variant reaches a target first


def test_target_finding_names_the_fastest_variant_not_the_slowest(tmp_path):
    results = reaching(tmp_path, {"no_bn": [4, 4, 5], "bn_input": [2, 2, 3]})
    assert target_finding(results) == (
        "**bn_input** reaches 90.0% validation accuracy first: median 2 [2, inf] epochs (95% interval; 3/3 seeds "
        "reached it). Others, median epochs (seeds that reached it): no_bn 4 (3/3).")


def test_a_median_on_one_lucky_seed_does_not_outrank_the_same_median_in_every_seed(tmp_path):
    results = reaching(tmp_path, {"bn_before_activation": [2, None], "bn_input": [2, 3]})
    text = target_finding(results)
    assert text.startswith("**bn_input** reaches 90.0% validation accuracy first: median 2 ")
    assert text.endswith("2/2 seeds reached it). Others, median epochs (seeds that reached it): "
                         "bn_before_activation 2 (1/2).")


def test_equal_medians_and_seeds_are_ranked_by_the_mean_over_every_seed(tmp_path):
    # both medians 3 in 3/3 seeds; means 10/3 against 3
    results = reaching(tmp_path, {"no_bn": [3, 3, 4], "bn_input": [1, 3, 5]})
    assert target_finding(results).startswith("**bn_input** reaches 90.0% validation accuracy first: median 3 ")


def test_identical_variants_tie(tmp_path):
    results = reaching(tmp_path, {"no_bn": [2, 2, 2], "bn_input": [2, 2, 2]})
    assert target_finding(results) == ("**no_bn** and **bn_input** tie for the first to reach 90.0% validation "
                                       "accuracy: median 2 [2, inf] epochs (3/3 seeds).")


def test_a_target_no_median_reached_is_named_before_the_one_reached(tmp_path):
    results = write_run(tmp_path / "run", config(["no_bn", "bn_input"], targets=[0.9, 0.95]), [
        trial(v, seed, {0.9: 2, 0.95: 4 if (v, seed) == ("bn_input", 0) else None})
        for v in ("no_bn", "bn_input") for seed in range(3)])
    text = target_finding(results)
    assert text.startswith("No variant's median reached 95.0% within the run. **no_bn** and **bn_input** tie")


def test_no_target_reached_by_any_median(tmp_path):
    results = reaching(tmp_path, {"no_bn": [None, None, 4], "bn_input": [None, None, None]}, targets=(0.9, 0.95))
    assert target_finding(results) == "No variant's median reached any target (95.0%, 90.0%) within the run."


# step mode, the test set as validation, and a baseline found by its registry name (Figure 1)


@pytest.fixture
def figure_1(tmp_path):
    trials = [trial("without_bn", s, {0.95: [6, 7, 8][s]}, accuracy=0.95 + 0.01 * s, seconds=2.0, gap=0.02)
              for s in range(3)]
    trials += [trial("with_bn", s, {0.95: [3, 3, 4][s]}, accuracy=0.97 + 0.01 * s + [0, 0.001, -0.001][s],
                     seconds=3.0, gap=0.01) for s in range(3)]
    run_config = config(FIGURE_1_VARIANTS, targets=[0.95], training=STEP_TRAINING, dataset={"validation": "test"})
    return write_run(tmp_path / "figure_1", run_config, trials)


def test_step_mode_speaks_in_steps_of_test_accuracy(figure_1):
    text = target_finding(figure_1)
    assert text.startswith("**with_bn** reaches 95.0% test accuracy first: median 300 [300, ")
    assert text.endswith(" steps (95% interval; 3/3 seeds reached it). Others, median steps (seeds that reached "
                         "it): without_bn 700 (3/3).")
    assert "epoch" not in text and "validation" not in text


def test_step_mode_adds_the_evaluation_interval_line(figure_1):
    assert findings(figure_1, "no_bn", evaluate_run(figure_1, "no_bn"))[-1] == (
        "This run counts optimizer steps: an evaluation every 100 steps; epoch seconds are the training "
        "seconds between two evaluations.")


def test_the_baseline_is_found_by_its_registry_name(figure_1):
    evaluation = evaluate_run(figure_1, "no_bn")
    assert "Against without_bn, paired by seed: +0.0200 [" in accuracy_finding(figure_1, "no_bn", evaluation)
    assert cost_finding(figure_1, "no_bn").startswith("Cost of an epoch against without_bn (2.00 s): with_bn 1.50x.")
    text = render_report(figure_1, "no_bn")
    assert "No `no_bn` trials" not in text
    assert "| with_bn | without_bn | test acc | 3 | +0.0200 [" in text


def test_gap_finding_names_the_test_set_when_it_validates(figure_1):
    assert gap_finding(figure_1) == ("Overfitting gap at the final evaluation (inference-mode training accuracy "
                                     "minus test accuracy): smallest with_bn 0.0100, largest without_bn 0.0200.")


# accuracy and overfitting gap


def accuracy_run(tmp_path, differences, **changes):
    """no_bn at 0.90, 0.91, ... and bn_input that much higher per seed; epochs 1 s slower, equal gaps."""
    trials = [trial("no_bn", s, {0.9: 2}, accuracy=0.90 + 0.01 * s) for s in range(len(differences))]
    trials += [trial("bn_input", s, {0.9: 2}, accuracy=0.90 + 0.01 * s + d, seconds=3.0)
               for s, d in enumerate(differences)]
    return write_run(tmp_path / "run", config(["no_bn", "bn_input"], len(differences), **changes), trials)


def test_accuracy_finding_names_the_highest_mean_and_its_verdict(tmp_path):
    results = accuracy_run(tmp_path, [0.02, 0.021, 0.019])
    # Holm over 3 tests: epoch seconds p 0 (always +1 s), accuracy p doubled, equal gaps p 1
    p = 2 * scipy_stats.ttest_rel([0.92, 0.931, 0.939], [0.90, 0.91, 0.92]).pvalue
    assert accuracy_finding(results, "no_bn", evaluate_run(results)) == (
        "Highest mean test accuracy: **bn_input**, 0.9300 [0.9063, 0.9537] (mean [95% CI] over seeds). Against "
        f"no_bn, paired by seed: +0.0200 [+0.0175, +0.0225], better (Holm-adjusted p {p:.2g}).")


def test_accuracy_finding_says_inconclusive_when_seeds_disagree(tmp_path):
    results = accuracy_run(tmp_path, [0.02, -0.01, 0.005])
    assert ", inconclusive (Holm-adjusted p " in accuracy_finding(results, "no_bn", evaluate_run(results))


def test_accuracy_finding_says_equivalent_within_the_declared_margin(tmp_path):
    results = accuracy_run(tmp_path, [0.0001, -0.0001, 0.0002, 0.0], analysis={"equivalence_margin": 0.003})
    assert ", equivalent within ±0.003 (Holm-adjusted p " in accuracy_finding(results, "no_bn", evaluate_run(results))


def test_gap_finding_names_smallest_and_largest(tmp_path):
    variants = {"no_bn": 0.03, "bn_after_activation": 0.02, "bn_input": 0.01}
    trials = [trial(v, s, {0.9: 2}, gap=gap) for v, gap in variants.items() for s in range(3)]
    trials.append(trial("bn_after_activation", 3, {0.9: None}, gap=0.5, status="diverged"))  # left out of means
    results = write_run(tmp_path / "run", config(variants, seeds=[0, 1, 2, 3]), trials)
    assert gap_finding(results) == ("Overfitting gap at the final evaluation (inference-mode training accuracy "
                                    "minus validation accuracy): smallest bn_input 0.0100, largest no_bn 0.0300.")


# caveats: diverged trials, too few seeds


DIVERGED_LINE = ("1 trial(s) diverged: bn_input seed 1. They are left out of the per-variant means and count with "
                 "their recorded figures in the paired comparisons and claims; a diverged seed that had not reached "
                 "a target never does.")
FEW_SEEDS_LINE = ("With fewer than 3 seeds the intervals are wide or missing: treat these sentences as a first look, "
                  "not a result.")


@pytest.mark.parametrize("seeds, diverged, expected", [
    (3, None, []), (3, ("bn_input", 1), [DIVERGED_LINE]), (2, None, [FEW_SEEDS_LINE]),
    (2, ("bn_input", 1), [DIVERGED_LINE, FEW_SEEDS_LINE]),
])
def test_caveat_lines_appear_exactly_when_they_apply(tmp_path, seeds, diverged, expected):
    trials = [trial(v, s, {0.9: 2}, status="diverged" if (v, s) == diverged else "complete")
              for v in ("no_bn", "bn_input") for s in range(seeds)]
    results = write_run(tmp_path / "run", config(["no_bn", "bn_input"], seeds), trials)
    lines = findings(results, "no_bn", evaluate_run(results))
    assert lines[4:] == expected
    assert lines[0].startswith("**no_bn** and **bn_input** tie")


# the learning-rate sweep's rules: no seed diverged, every seed reached


def sweep_table(rows):
    """rows: (variant, learning rate, seed, status, final val acc, epochs to 0.98 or None)."""
    trials = pd.DataFrame([{"variant": f"{v}-learning_rate{lr:g}", "seed": s, "base_variant": v, "learning_rate": lr,
                            "status": status, "final_val_accuracy": acc, "epochs_run": 5}
                           for v, lr, s, status, acc, _ in rows])
    targets = pd.DataFrame([{"variant": f"{v}-learning_rate{lr:g}", "seed": s, "target": 0.98,
                             "reached": e is not None, "epochs_to_target": e} for v, lr, s, _, _, e in rows])
    return sweep.sweep_table(trials, targets, "learning_rate")


def test_a_value_where_one_seed_diverged_is_not_usable_however_accurate_the_others(tmp_path):
    table = sweep_table([("bn", 0.1, 0, "complete", 0.98, 3), ("bn", 0.1, 1, "complete", 0.98, 3),
                         ("bn", 1.0, 0, "diverged", 0.098, None), ("bn", 1.0, 1, "complete", 0.99, 2)])
    assert table["final_val_accuracy"].tolist() == [0.98, 0.99]  # the diverged seed is out of the mean
    usable = sweep.usable_values(table, "learning_rate", 0.97)
    assert usable.loc[0, "usable"] == [0.1] and usable.loc[0, "largest"] == 0.1


def test_beyond_the_baseline_only_values_reached_in_every_seed_are_named():
    rows = [("plain", 0.1, s, "complete", 0.975, None) for s in (0, 1)]
    rows += [("bn", 0.1, 0, "complete", 0.98, 4), ("bn", 0.1, 1, "complete", 0.98, 4),
             ("bn", 1.0, 0, "complete", 0.985, 2), ("bn", 1.0, 1, "complete", 0.985, None),
             ("bn", 3.0, 0, "complete", 0.985, 3), ("bn", 3.0, 1, "complete", 0.985, 3)]
    [line] = sweep.robustness_verdict(sweep_table(rows), "learning_rate", 0.97, [0.98], "plain")
    assert line.endswith("Above 0.1, every seed reached 0.98 at 3 (3.0 epochs).")  # not at 1 (1 of 2 seeds)
    assert np.isnan(sweep.usable_values(sweep_table(rows[:2]), "learning_rate", 0.99).loc[0, "largest"])


# the Figure 1 study: picked by the activation probe, naming the probed nonlinearity


def test_the_figure_1_section_names_the_activation_the_variants_use(tmp_path):
    variants = [dict(v, overrides={"activation": "tanh"}) for v in FIGURE_1_VARIANTS]
    trials = [trial(v, s, {0.95: 3}) for v in ("without_bn", "with_bn") for s in range(3)]
    run_config = config(variants, targets=[0.95], training=STEP_TRAINING, dataset={"validation": "test"},
                        activation_probe={"hidden_layer": 2, "units": [0], "probe_examples": 100})
    results = write_run(tmp_path / "run", run_config, trials)
    # without BN a unit's median climbs by 0.1 every 100 steps; with BN it stays at 0
    pd.DataFrame([{"variant": v, "seed": s, "step": step, "unit": 0, "p15": m - 1, "p50": m, "p85": m + 1}
                  for v in ("without_bn", "with_bn") for s in range(3) for step in range(0, 1001, 100)
                  for m in [step / 1000 if v == "without_bn" else 0.0]]).to_csv(results.path / "activations.csv",
                                                                                 index=False)
    text = render_report(load_results(results.path), "no_bn")
    assert "## Ioffe & Szegedy 2015, Figure 1: training dynamics without and with BN" in text
    assert "percentiles of the input to the tanh of unit 0 of hidden layer 2, over 100 fixed" in text
    assert "sigmoid" not in text
    assert "- Claim 2 (a stable input distribution with BN, a drifting one without) **holds in part** here" in text
