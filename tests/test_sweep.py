"""Learning-rate sweep tables and the robustness verdict, on hand-made trials."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bnlab.analysis import sweep

# (base variant, learning rate, seed, status, final val acc, epochs to 0.98 or None)
TRIALS = [
    ("plain", 0.1, 0, "complete", 0.975, None), ("plain", 0.1, 1, "complete", 0.973, None),
    ("plain", 1.0, 0, "diverged", 0.098, None), ("plain", 1.0, 1, "complete", 0.90, None),
    ("bn", 0.1, 0, "complete", 0.981, 4), ("bn", 0.1, 1, "complete", 0.982, 3),
    ("bn", 1.0, 0, "complete", 0.985, 2), ("bn", 1.0, 1, "complete", 0.984, 2),
]


def tables():
    trials = pd.DataFrame([
        {"variant": f"{v}-learning_rate{lr:g}", "seed": s, "base_variant": v, "learning_rate": lr,
         "status": status, "final_val_accuracy": acc, "epochs_run": 5} for v, lr, s, status, acc, _ in TRIALS])
    targets = pd.DataFrame([
        {"variant": f"{v}-learning_rate{lr:g}", "seed": s, "target": 0.98, "reached": e is not None,
         "epochs_to_target": e} for v, lr, s, _, _, e in TRIALS])
    return trials, targets


def test_sweep_table_exact_values():
    table = sweep.sweep_table(*tables(), "learning_rate").set_index(["base_variant", "learning_rate"])
    assert table.loc[("plain", 0.1), "final_val_accuracy"] == pytest.approx(0.974)
    assert table.loc[("plain", 1.0), "diverged"] == 1
    assert table.loc[("plain", 1.0), "final_val_accuracy"] == pytest.approx(0.90)  # the diverged seed left out
    assert np.isnan(table.loc[("plain", 0.1), "epochs_to_0.98"])
    assert table.loc[("bn", 0.1), "epochs_to_0.98"] == 3.5
    assert table.loc[("bn", 1.0), "reached_0.98"] == 2
    # censored: a seed that never reached the target counts as 6 (epochs_run 5 + 1)
    assert table.loc[("plain", 0.1), "censored_epochs_to_0.98"] == 6
    assert table.loc[("bn", 0.1), "censored_epochs_to_0.98"] == 3.5


def test_usable_values():
    table = sweep.sweep_table(*tables(), "learning_rate")
    usable = sweep.usable_values(table, "learning_rate", 0.97).set_index("base_variant")
    assert usable.loc["plain", "usable"] == [0.1] and usable.loc["plain", "largest"] == 0.1
    assert usable.loc["bn", "usable"] == [0.1, 1.0] and usable.loc["bn", "largest"] == 1.0


def test_robustness_verdict_holds_and_says_why():
    table = sweep.sweep_table(*tables(), "learning_rate")
    [line] = sweep.robustness_verdict(table, "learning_rate", 0.97, [0.98], "plain")
    assert line == ("bn: the claim **holds**. Largest usable learning rate 1 against 0.1 for plain; fewest "
                    "epochs to 0.98 in 2.0 epochs at 1 against 6.0 at 0.1. Above 0.1, every seed reached "
                    "0.98 at 1 (2.0 epochs).")


def test_robustness_verdict_fails_when_bn_is_no_more_tolerant_nor_faster():
    trials, targets = tables()
    bn = trials["base_variant"] == "bn"
    trials.loc[bn & (trials["learning_rate"] == 1.0), "status"] = "diverged"
    targets.loc[targets["variant"].str.startswith("bn"), ["reached", "epochs_to_target"]] = [False, None]
    table = sweep.sweep_table(trials, targets, "learning_rate")
    [line] = sweep.robustness_verdict(table, "learning_rate", 0.97, [0.98], "plain")
    assert "the claim **does not hold**" in line


def test_robustness_verdict_holds_in_part():
    trials, targets = tables()
    targets.loc[targets["variant"].str.startswith("bn"), ["reached", "epochs_to_target"]] = [False, None]
    table = sweep.sweep_table(trials, targets, "learning_rate")
    [line] = sweep.robustness_verdict(table, "learning_rate", 0.97, [0.98], "plain")
    assert "the claim **holds in part**" in line  # more tolerant, but no faster to 0.98


def test_plot_marks_diverged_values():
    table = sweep.sweep_table(*tables(), "learning_rate")
    figure = sweep.plot_learning_rate_sweep(table, "learning_rate", 0.98, ["plain", "bn"], never=6)
    assert isinstance(figure, Figure)
    accuracy_axes = figure.axes[0]
    crosses = [c for c in accuracy_axes.collections if len(c.get_offsets())]
    assert [c.get_offsets()[:, 0].tolist() for c in crosses] == [[1.0]]  # plain diverged at lr 1
