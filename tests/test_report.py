"""The report: its numbers, its pairing with the baseline (per grid point) and the written file.

The run folders are synthetic: tables with chosen numbers, so every figure in the text can be
checked by hand. No training happens here (tests/test_notebooks.py runs a real one).
"""

import json

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from bnlab.analysis.pairing import baseline_pairs, trial_labels, variant_order  # noqa: E402
from bnlab.analysis.summary import summary_markdown  # noqa: E402
from bnlab.report import studies  # noqa: E402
from bnlab.report import write as report  # noqa: E402
from bnlab.report.findings import accuracy_finding, cost_finding  # noqa: E402
from bnlab.report.tables import comparison_markdown, targets_markdown  # noqa: E402
from bnlab.runs.results import load_results  # noqa: E402

LEARNING_RATES = (0.01, 0.1)
SEEDS = (0, 1, 2)
CONFIG = {
    "name": "synthetic",
    "description": "Chosen numbers, no training.",
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 512},
    "variants": ["no_bn", "bn_input"],
    "seeds": len(SEEDS),
    "training": {"epochs": 3, "batch_size": 32, "optimizer": {"name": "sgd", "learning_rate": 0.01}},
    "targets": [0.9],
}
# Test accuracy by (variant, learning rate), plus 0.01 per seed and a small per-seed wobble for
# bn_input: at 0.01 bn_input beats no_bn by about 0.02, at 0.1 it loses by about 0.02. Compared
# across grid points (bn_input at 0.1 against no_bn at 0.01) it would win by about 0.03.
TEST_ACCURACY = {("no_bn", 0.01): 0.90, ("bn_input", 0.01): 0.92, ("no_bn", 0.1): 0.95, ("bn_input", 0.1): 0.93}
WOBBLE = (0.0, 0.001, -0.001)
EPOCH_SECONDS = {("no_bn", 0.01): 2.0, ("bn_input", 0.01): 3.0, ("no_bn", 0.1): 4.0, ("bn_input", 0.1): 5.0}


def grid_label(name, rate):
    return f"{name}-learning_rate{rate:g}"


def trial_row(label, name, rate, seed, accuracy, seconds):
    return {
        "variant": label, "seed": seed, "base_variant": name, "learning_rate": rate,
        "status": "complete", "epochs_run": 3, "best_epoch": 3,
        "test_accuracy": accuracy, "steady_epoch_seconds": seconds,
        "best_val_accuracy": accuracy + 0.01, "final_val_accuracy": accuracy + 0.005,
        "final_accuracy_gap": 0.01, "final_loss_gap": 0.02, "epochs_to_0.9": 2.0,
    }


def write_run(folder, grid, diverged=None, claims=()):
    """A run folder as `bnlab run` leaves it, with the numbers above; returns its RunResults.

    `diverged`: a (variant, seed) whose trial diverged after reaching the target; `claims`: the config's.
    """
    config = dict(CONFIG, grid={"training.optimizer.learning_rate": list(LEARNING_RATES)} if grid else {},
                  claims=list(claims))
    rates = LEARNING_RATES if grid else (0.01,)
    trials, epochs, targets = [], [], []
    for seed in SEEDS:
        for name in CONFIG["variants"]:
            for rate in rates:
                label = grid_label(name, rate) if grid else name
                accuracy = TEST_ACCURACY[name, rate] + 0.01 * seed + (WOBBLE[seed] if name == "bn_input" else 0)
                trials.append(trial_row(label, name, rate, seed, accuracy, EPOCH_SECONDS[name, rate]))
                if (name, seed) == diverged:
                    trials[-1]["status"] = "diverged"
                targets.append({"variant": label, "seed": seed, "target": 0.9, "reached": True, "epochs_to_target": 2})
                epochs += [{"variant": label, "seed": seed, "epoch": epoch, "loss": 1 / epoch, "accuracy": 0.9,
                            "val_loss": 0.3, "val_accuracy": 0.85 + 0.02 * epoch, "train_eval_loss": 0.2,
                            "train_eval_accuracy": 0.9} for epoch in (1, 2, 3)]
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metadata.json").write_text(json.dumps({"status": "complete", "backend": "tensorflow"}))
    for name, rows in (("trials", trials), ("epochs", epochs), ("targets", targets)):
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return load_results(folder)


@pytest.fixture
def plain(tmp_path):
    return write_run(tmp_path / "plain", grid=False)


@pytest.fixture
def gridded(tmp_path):
    return write_run(tmp_path / "grid", grid=True)


def table_rows(markdown):
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]


# pairing with the baseline


def test_without_grid_every_variant_is_paired_with_the_baseline(plain):
    assert baseline_pairs(plain, "no_bn") == [("bn_input", "no_bn")]


def test_with_grid_each_variant_is_paired_with_the_baseline_at_its_own_grid_point(gridded):
    assert baseline_pairs(gridded, "no_bn") == [
        ("bn_input-learning_rate0.01", "no_bn-learning_rate0.01"),
        ("bn_input-learning_rate0.1", "no_bn-learning_rate0.1"),
    ]


def test_a_trial_label_as_baseline_pairs_every_other_trial_variant_with_it(gridded):
    pairs = baseline_pairs(gridded, "no_bn-learning_rate0.1")
    assert pairs == [(label, "no_bn-learning_rate0.1") for label in
                     ("no_bn-learning_rate0.01", "bn_input-learning_rate0.01", "bn_input-learning_rate0.1")]


def test_an_absent_baseline_gives_no_pairs_and_says_so(gridded):
    assert baseline_pairs(gridded, "bn_after_activation") == []
    evaluation = report.evaluate_run(gridded, "bn_after_activation")
    assert comparison_markdown(gridded, evaluation, "bn_after_activation") == (
        "No `bn_after_activation` trials in this run, so no comparison against it.")


def test_a_report_against_an_absent_baseline_has_no_comparison_nor_cost(gridded):
    text = report.render_report(gridded, "bn_after_activation")
    assert "No `bn_after_activation` trials in this run" in text
    assert "Highest mean test accuracy: **no_bn-learning_rate0.1**, 0.9600" in text
    assert "Against" not in text.split("## Findings")[1].split("## Summary")[0]
    assert "Cost of an epoch" not in text


def comparison_rows(results, baseline):
    return table_rows(comparison_markdown(results, report.evaluate_run(results, baseline), baseline))


def test_comparison_table_differences_and_verdicts_per_grid_point(gridded):
    rows = comparison_rows(gridded, "no_bn")
    accuracy = [row for row in rows if row[2] == "test acc"]
    assert [row[:4] + [row[4].split(" ")[0]] for row in accuracy] == [
        ["bn_input-learning_rate0.01", "no_bn-learning_rate0.01", "test acc", "3", "+0.0200"],
        ["bn_input-learning_rate0.1", "no_bn-learning_rate0.1", "test acc", "3", "-0.0200"],
    ]
    assert [row[-1] for row in accuracy] == ["better", "worse"]
    seconds = [row for row in rows if row[2] == "epoch s"]
    assert [row[4] for row in seconds] == ["+1.00 [+1.00, +1.00]"] * 2
    assert [row[-1] for row in seconds] == ["worse", "worse"]  # slower epochs are worse
    gaps = [row for row in rows if row[2] == "acc gap"]
    assert [row[-1] for row in gaps] == ["inconclusive", "inconclusive"]  # equal gaps, no margin declared


def test_comparison_interval_is_the_t_interval_of_the_paired_differences(plain):
    # differences 0.020, 0.021, 0.019: mean 0.020, sd 0.001, t(0.975, 2) = 4.303
    row = next(r for r in comparison_rows(plain, "no_bn") if r[2] == "test acc")
    half = 4.3027 * 0.001 / 3 ** 0.5
    assert row[4] == f"+0.0200 [{0.02 - half:+.4f}, {0.02 + half:+.4f}]"
    assert row[5:7] == ["—", "—"]  # no per-example predictions in this run


def test_holm_family_counts_every_comparison_of_the_report(gridded, plain):
    assert report.evaluate_run(gridded, "no_bn").family == 6  # 2 pairs x 3 figures
    assert report.evaluate_run(plain, "no_bn").family == 3


# findings


def test_accuracy_finding_compares_the_best_with_its_own_grid_points_baseline(gridded):
    text = accuracy_finding(gridded, "no_bn", report.evaluate_run(gridded, "no_bn"))
    assert text.startswith("Highest mean test accuracy: **no_bn-learning_rate0.1**, 0.9600")
    assert "Against" not in text  # the best is a baseline itself
    baseline = "no_bn-learning_rate0.01"
    plain_text = accuracy_finding(gridded, baseline, report.evaluate_run(gridded, baseline))
    assert "Against no_bn-learning_rate0.01, paired by seed: +0.0500" in plain_text
    assert ", better (Holm-adjusted p " in plain_text


def test_cost_finding_without_grid_names_the_baseline_seconds(plain):
    assert cost_finding(plain, "no_bn").startswith("Cost of an epoch against no_bn (2.00 s): bn_input 1.50x.")


def test_cost_finding_with_grid_divides_by_the_baseline_at_the_same_point(gridded):
    assert cost_finding(gridded, "no_bn").startswith(
        "Cost of an epoch against no_bn at the same grid point: "
        "bn_input-learning_rate0.01 1.50x, bn_input-learning_rate0.1 1.25x.")


def test_cost_finding_is_left_out_without_a_baseline(plain):
    assert cost_finding(plain, "bn_after_activation") == ""


# tables


def test_statistics_row_is_mean_and_t_interval_over_seeds(plain):
    rows = {row[0]: row for row in table_rows(report.statistics_markdown(plain))}
    # no_bn test accuracy 0.90, 0.91, 0.92: mean 0.91, sd 0.01
    half = 4.3027 * 0.01 / 3 ** 0.5
    assert rows["no_bn"][1] == "3"
    assert rows["no_bn"][4] == f"0.9100 [{0.91 - half:.4f}, {0.91 + half:.4f}]"


def test_targets_table_counts_reached_seeds(plain):
    # every seed reached 0.9 at epoch 2: median 2, its band's upper end never reached
    rows = table_rows(targets_markdown(plain))
    assert rows == [["no_bn", "0.9", "3/3", "0", "2 [2, inf]", "2"], ["bn_input", "0.9", "3/3", "0", "2 [2, inf]", "2"]]


def test_summary_counts_a_seed_that_reached_the_target_before_it_diverged(tmp_path):
    results = write_run(tmp_path / "run", grid=False, diverged=("bn_input", 2))
    rows = {row[0]: row for row in table_rows(summary_markdown(results))}
    assert rows["bn_input"][1] == "2 (+1 diverged)"
    assert rows["bn_input"][-1] == "2.0 (3/3)"  # every seed counts, the diverged one reached at epoch 2
    rows = table_rows(targets_markdown(results))
    assert rows[1][2:4] == ["3/3", "0"]


# the written report


@pytest.mark.parametrize("grid", [False, True], ids=["plain", "grid"])
def test_write_report_writes_every_section_and_figure(tmp_path, grid):
    results = write_run(tmp_path / "run", grid=grid)
    path = report.write_report(results.path)
    text = path.read_text()
    for heading in ("## Findings", "## Summary", "## Statistics over seeds", "## Against the baseline",
                    "## Epochs to target", "## Figures", "## Setup", "## Environment"):
        assert heading in text
    assert "No `no_bn` trials" not in text
    for name, _ in report.REPORT_FIGURES:
        assert (results.path / "figures" / name).stat().st_size > 0


CLAIM = {"id": "input_helps", "statement": "BN on the input raises test accuracy", "source": "chosen numbers",
         "metric": "test_accuracy", "variant": "bn_input", "baseline": "no_bn", "expect": "higher"}


def test_a_report_with_claims_shows_them_before_the_findings(tmp_path):
    results = write_run(tmp_path / "run", grid=False, claims=[CLAIM])
    text = report.write_report(results.path).read_text()
    assert text.index("## Claims") < text.index("## Findings")
    [row] = [line for line in text.splitlines() if line.startswith("| **input_helps**")]
    assert row.startswith("| **input_helps**: BN on the input raises test accuracy (chosen numbers) | bn_input vs "
                          "no_bn, expected higher | test_accuracy | 3 | +0.0200 [")
    assert row.endswith("| **holds** |")
    assert "Holm-corrected over the report's 4 tests" in text  # 3 baseline comparisons and the claim


def test_a_report_without_claims_has_no_claims_section(plain):
    assert "## Claims" not in report.render_report(plain)


def test_write_report_of_a_run_without_trials_is_an_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    with pytest.raises(ValueError, match="no finished trial yet"):
        report.write_report(folder)


# studies: entries the report looks up by what a run holds


def toy_study(built):
    """A study for runs with bn_input trials; records the baseline of every build."""
    def build(results, baseline):
        built.append(baseline)
        return studies.Section("## Toy study\n\nbn_input trained on three seeds.", {})
    return studies.Study("toy", applies=lambda results: "bn_input" in set(results.trials["variant"]), build=build)


def test_a_registered_study_that_applies_has_its_section_before_the_findings(plain):
    built = []
    with studies.registered_study(toy_study(built)):
        assert studies.list_studies()[-1] == "toy"
        text = report.render_report(plain, "no_bn")
    assert text.index("## Toy study\n\nbn_input trained on three seeds.") < text.index("## Findings")
    assert built == ["no_bn"]
    assert "toy" not in studies.list_studies()
    assert "## Toy study" not in report.render_report(plain, "no_bn")


def test_a_study_that_does_not_apply_is_never_built(plain):
    def build(results, baseline):
        raise AssertionError("built although it does not apply")
    with studies.registered_study(studies.Study("never", applies=lambda results: False, build=build)):
        assert studies.study_sections(plain, "no_bn") == []


def test_register_study_decorates_the_section_builder(plain):
    @studies.register_study("decorated", applies=lambda results: True)
    def decorated_section(results, baseline):
        return studies.Section(f"## Decorated\n\n{len(results.trials)} trials against {baseline}.", {})
    try:
        assert "## Decorated\n\n6 trials against no_bn." in report.render_report(plain, "no_bn")
    finally:
        studies.unregister_study("decorated")
    assert decorated_section(plain, "x").markdown.endswith("against x.")


def test_the_built_in_studies_in_report_order():
    assert studies.list_studies()[:2] == ["ioffe2015_figure1", "learning_rate_sweep"]


def test_study_names_are_unique_and_an_unknown_one_lists_the_registered():
    taken = studies.Study("learning_rate_sweep", applies=lambda results: True, build=lambda results, baseline: None)
    with pytest.raises(ValueError, match="A study named 'learning_rate_sweep' is registered already"):
        studies.add_study(taken)
    with pytest.raises(ValueError, match=r"Unknown study 'toy'\. Available: ioffe2015_figure1, learning_rate_sweep"):
        studies.unregister_study("toy")


def test_a_study_is_picked_by_what_the_run_holds(plain, gridded):
    assert "## Learning-rate robustness" in report.render_report(gridded, "no_bn")
    assert "## Learning-rate robustness" not in report.render_report(plain, "no_bn")


def test_variant_order_is_the_config_order_of_the_labels_present(gridded):
    present = ["bn_input-learning_rate0.1", "no_bn-learning_rate0.01", "not_in_the_config"]
    assert variant_order(gridded.config, present) == ["no_bn-learning_rate0.01", "bn_input-learning_rate0.1"]
    assert trial_labels(gridded) == ["no_bn-learning_rate0.01", "no_bn-learning_rate0.1",
                                     "bn_input-learning_rate0.01", "bn_input-learning_rate0.1"]
