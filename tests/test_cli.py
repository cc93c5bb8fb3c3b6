"""The `bnlab` command as a user runs it: real subprocesses, real files.

One test trains through `bnlab run` end to end; the others read, report or resume the session's
shared tiny run (tests/conftest.py), or a copy of it when they write.
"""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import bnlab
from bnlab.common.columns import EPOCH_COLUMNS, TRAIN_EVAL_EXAMPLES
from bnlab.common.startup import START_UP_LINE
from bnlab.config import resolve_config_path


def bnlab_command(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bnlab", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_run_tiny_end_to_end(tmp_path):
    # the README's install check, as written there: `bnlab run tiny`, into ./runs/tiny
    assert ".venv/bin/bnlab run tiny " in (Path(__file__).parents[1] / "README.md").read_text()
    out = tmp_path / "runs" / "tiny"
    result = bnlab_command("run", "tiny", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tiny: mean±std over seeds" in result.stdout
    noise = [line for line in result.stderr.splitlines() if START_UP_LINE.match(line) or "retracing" in line]
    assert noise == [], "TensorFlow's start-up lines reached the terminal"
    for variant in bnlab.load_config("tiny").variants:
        assert variant.label in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "bn_discrepancy.csv", "config.yaml", "epochs.csv", "metadata.json", "targets.csv",
        "test_predictions.npz", "trials", "trials.csv",
    ]
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.columns) == ["variant", "seed", *EPOCH_COLUMNS, TRAIN_EVAL_EXAMPLES]
    assert len(epochs) == 4 * 2 * 2  # variants x seeds x epochs
    trials = pd.read_csv(out / "trials.csv")
    assert sorted(trials["variant"]) == sorted(2 * [variant.label for variant in bnlab.load_config("tiny").variants])
    assert set(trials["seed"]) == {0, 1}
    assert yaml.safe_load((out / "config.yaml").read_text())["seeds"] == [0, 1]
    # the saved predictions score exactly as Keras's evaluate() did
    results = bnlab.load_results(out)
    for row in results.trials.itertuples():
        assert results.predictions.correct(row.variant)[row.seed].mean() == pytest.approx(row.test_accuracy, abs=1e-6)


def write_synthetic_run(folder, differences):
    """A run folder with two variants whose paired test-accuracy differences are `differences`."""
    folder.mkdir()
    config = {"name": "plan", "dataset": {"validation_size": 256, "train_subset": 512},
              "variants": ["no_bn", "bn_input"], "seeds": len(differences), "training": {"epochs": 1, "batch_size": 32,
                                                      "optimizer": {"name": "sgd", "learning_rate": 0.01}},
              "targets": [0.9]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    trials = [{"variant": variant, "seed": seed, "status": "complete", "epochs_run": 1,
               "test_accuracy": 0.95 + (difference if variant == "bn_input" else 0) + 0.01 * seed}
              for seed, difference in enumerate(differences) for variant in ("no_bn", "bn_input")]
    pd.DataFrame(trials).to_csv(folder / "trials.csv", index=False)
    pd.DataFrame(columns=["variant", "seed", "epoch"]).to_csv(folder / "epochs.csv", index=False)
    pd.DataFrame(columns=["variant", "seed", "target"]).to_csv(folder / "targets.csv", index=False)


def test_plan_seeds_prints_the_seeds_a_paired_t_test_needs(tmp_path):
    # differences 0.001, 0.003, 0.001, 0.003: std 0.0011547; an effect of one std needs 10 seeds for
    # 80% power (two-sided paired t at 0.05; the textbook value for d = 1)
    write_synthetic_run(tmp_path / "run", [0.001, 0.003, 0.001, 0.003])
    result = bnlab_command("plan-seeds", str(tmp_path / "run"), "--effect", "0.0011547")
    assert result.returncode == 0, result.stderr
    assert "bn_input vs no_bn: std 0.001155 over 4 pairs -> 10 seeds" in result.stdout


def test_plan_seeds_rejects_a_bad_effect_and_an_unknown_figure(tmp_path):
    write_synthetic_run(tmp_path / "run", [0.001, 0.003])
    bad = bnlab_command("plan-seeds", str(tmp_path / "run"), "--effect", "-1")
    assert bad.returncode == 2 and "--effect must be positive" in bad.stderr
    unknown = bnlab_command("plan-seeds", str(tmp_path / "run"), "--effect", "0.01", "--figure", "acc")
    assert unknown.returncode == 2 and "--figure: expected a column of the trials table" in unknown.stderr


def test_plan_seeds_reads_the_spread_of_a_trained_run(tiny_run):
    trials = pd.read_csv(tiny_run / "trials.csv").pivot(index="seed", columns="variant", values="test_accuracy")
    std = (trials["bn_before_activation"] - trials["no_bn"]).std()
    assert std > 0
    # an effect of one std of the paired differences needs 10 seeds, whatever that std is (d = 1, as above)
    result = bnlab_command("plan-seeds", str(tiny_run), "--effect", repr(float(std)))
    assert result.returncode == 0, result.stderr
    assert f"bn_before_activation vs no_bn: std {std:.4g} over 2 pairs -> 10 seeds" in result.stdout


def test_report_command_writes_the_report_and_its_figures(tiny_run_copy):
    result = bnlab_command("report", str(tiny_run_copy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Report written: {tiny_run_copy / 'report.md'}"
    report = (tiny_run_copy / "report.md").read_text()
    assert "no_bn" in report and "bn_before_activation" in report
    figures = sorted(p.name for p in (tiny_run_copy / "figures").iterdir())
    assert {"validation_accuracy.png", "training_loss.png", "epochs_to_target.png", "epoch_time.png",
            "overfitting_gap.png"} <= set(figures)
    assert all(f"figures/{name}" in report for name in figures)  # every figure written is shown


def test_runs_command_lists_a_finished_run(tiny_run):
    result = bnlab_command("runs", str(tiny_run.parent))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if str(tiny_run) in line]
    assert len(rows) == 1 and "tiny" in rows[0] and "complete" in rows[0] and "4/4" in rows[0], result.stdout


def test_variants_option_and_resume_message(tiny_run_copy):
    # the shared run holds two of tiny's four variants: only with --variants is it the same config, so it resumes
    before = (tiny_run_copy / "trials.csv").read_text()
    again = bnlab_command("run", "tiny", "--out", str(tiny_run_copy), "--variants", "no_bn,bn_before_activation")
    assert again.returncode == 0, again.stderr
    assert "Resuming: 4 of 4 trials already finished." in again.stderr
    assert (tiny_run_copy / "trials.csv").read_text() == before


def _bad_config(tmp_path, **changes):
    data = yaml.safe_load(resolve_config_path("tiny").read_text())
    data.update(changes)
    data["output_dir"] = str(tmp_path / "should-not-exist")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "changes, line",
    [
        ({"seeds": [1, 1]}, "seeds: expected distinct seeds, received 1 more than once."),
        ({"variants": ["bn_befor"]},
         "variants[0].name: expected one of bn_after_activation, bn_before_activation, bn_input, "
         "bn_input_scaled, ghost_bn_before_activation, group_norm_before_activation, layer_norm_before_activation, "
         "no_bn, noisy_bn_before_activation, renorm_before_activation, weight_norm, received the string 'bn_befor'."),
        ({"targets": [1.2]}, "targets[0]: expected a number in (0, 1], received 1.2."),
        ({"variants": [{"name": "no_bn", "overrides": {"hidden_units": []}}]},
         "variants[0].overrides.hidden_units: expected a non-empty sequence of positive integers, e.g. (300, 100), "
         "received a list."),
        ({"variants": [{"name": "no_bn", "overrides": {"activation": "rellu"}}]},
         "variants[0].overrides: Could not interpret activation function identifier: rellu"),
    ],
)
def test_bad_config_exits_2_with_one_line_and_creates_nothing(tmp_path, changes, line):
    path = _bad_config(tmp_path, **changes)
    result = bnlab_command("run", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [text for text in result.stderr.splitlines() if text.startswith("bnlab: ")]
    assert len(lines) == 1 and line in lines[0], result.stderr
    assert not (tmp_path / "should-not-exist").exists()


def test_bad_command_line_values(tmp_path):
    result = bnlab_command("run", "tiny", "--epochs", "0", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip() == "bnlab: command line: training.epochs: expected a positive integer, received 0."
    unknown = bnlab_command("run", "nonexistent")
    assert unknown.returncode == 2
    shipped = ("data_order, data_order_fit, init_gradients, input_bn, ioffe2015_fig1, lr_sweep, placement, "
               "precise_bn, quickstart, santurkar2018, ")
    assert (f"nonexistent: unknown config name; expected one of {shipped}small_batch, small_batch_literal, tiny, "
            "train_at_lr1, weight_decay or a path to a YAML file." in unknown.stderr)
    assert not (tmp_path / "x").exists()


def test_named_config_found_outside_the_repo(tmp_path):
    result = bnlab_command("configs", cwd=tmp_path)
    assert result.returncode == 0
    assert {"placement", "quickstart", "tiny"} <= set(result.stdout.split())


def test_variants_command_prints_the_parameter_counts_quietly():
    result = bnlab_command("variants")
    assert result.returncode == 0, result.stderr
    counts = {"no_bn": "266,610", "bn_after_activation": "268,210", "bn_before_activation": "267,810",
              "bn_input": "269,746"}  # Keras's count_params, hand-checked in tests/test_models.py
    for name, total in counts.items():
        assert any(name in line and total in line for line in result.stdout.splitlines()), name
    assert [line for line in result.stderr.splitlines() if START_UP_LINE.match(line)] == []
