"""Figure 1 analysis: drift of the probed distributions, accuracy checkpoints, the two verdicts."""

import pandas as pd
import pytest
from matplotlib.figure import Figure

from bnlab.analysis import dynamics


def activations():
    """Two variants, one seed, one unit, 5 records. Without BN the median climbs 0 -> 4 and the
    spread doubles; with BN both stay put."""
    rows = []
    for step, (median, half) in zip([0, 100, 200, 300, 400], [(0, 1), (1, 1), (2, 1.5), (3, 2), (4, 2)]):
        rows.append({"variant": "plain", "seed": 0, "step": step, "unit": 0,
                     "p15": median - half, "p50": median, "p85": median + half})
        rows.append({"variant": "bn", "seed": 0, "step": step, "unit": 0,
                     "p15": -1.0, "p50": 0.1 * (step > 0), "p85": 1.0})
    return pd.DataFrame(rows)


def test_percentile_drift_exact_values():
    drift = dynamics.percentile_drift(activations(), from_step=100).set_index("variant")
    plain = drift.loc["plain"]
    # medians 1, 2, 3, 4 -> shift 3; widths 2, 3, 4, 4 -> mean 3.25, change 2
    assert (plain["median_shift"], plain["spread"], plain["spread_change"]) == (3, 3.25, 2)
    assert plain["relative_median_shift"] == pytest.approx(3 / 3.25)
    assert plain["relative_spread_change"] == pytest.approx(2 / 3.25)
    bn = drift.loc["bn"]
    assert (bn["median_shift"], bn["spread"], bn["spread_change"]) == (0, 2, 0)


def test_percentile_drift_window_starts_at_from_step():
    drift = dynamics.percentile_drift(activations(), from_step=0).set_index("variant")
    assert drift.loc["plain", "median_shift"] == 4
    assert drift.loc["bn", "median_shift"] == pytest.approx(0.1)


def test_percentile_drift_needs_records_in_the_window():
    with pytest.raises(ValueError, match="No activation records at or after step 500"):
        dynamics.percentile_drift(activations(), from_step=500)


def test_drift_windows_leave_out_step_0_and_the_settling_period():
    windows = dynamics.drift_windows(activations())  # steps 0..400: 10% of 400 is 40 < 100
    assert list(windows) == [100]
    longer = pd.concat([activations(), activations().assign(step=lambda t: t["step"] + 1000)])
    assert list(dynamics.drift_windows(longer)) == [100, 140]


def test_drift_verdict_states_the_numbers():
    windows = {100: dynamics.percentile_drift(activations(), from_step=100)}
    text = dynamics.drift_verdict(windows, "plain", "bn")
    assert text.startswith("Claim 2 (a stable input distribution with BN, a drifting one without) **holds** here")
    assert ("from step 100 on, a unit's median moved by 0.00 x its 15-85 percentile spread with BN against "
            "0.92 x without, and the spread changed by 0.00 x against 0.62 x") in text
    assert "**does not hold**" in dynamics.drift_verdict(windows, "bn", "plain")


def test_drift_verdict_holds_in_part_when_one_measure_disagrees():
    table = activations()
    bn = table["variant"] == "bn"
    table.loc[bn, "p50"] = table.loc[bn, "step"] / 50  # BN's median now drifts more (0 -> 8)
    windows = {100: dynamics.percentile_drift(table, from_step=100)}
    assert "**holds in part**" in dynamics.drift_verdict(windows, "plain", "bn")


def epochs():
    """Seed 0 and 1; 'bn' ahead of 'plain' at every step, by 0.02 and 0.01."""
    rows = []
    for seed, lead in ((0, 0.02), (1, 0.01)):
        for step, accuracy in zip([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
                                  [0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.955, 0.96]):
            rows.append({"variant": "plain", "seed": seed, "step": step, "val_accuracy": accuracy})
            rows.append({"variant": "bn", "seed": seed, "step": step, "val_accuracy": accuracy + lead})
    return pd.DataFrame(rows)


def test_accuracy_at_checkpoints_picks_the_nearest_evaluation():
    table = dynamics.accuracy_at_checkpoints(epochs(), fractions=(0.1, 0.5, 1.0))
    plain0 = table.query("variant == 'plain' and seed == 0")
    assert plain0["step"].tolist() == [100, 500, 1000]
    assert plain0["val_accuracy"].tolist() == [0.80, 0.92, 0.96]


def test_figures_are_built():
    assert isinstance(dynamics.plot_accuracy_by_step(epochs(), ["plain", "bn"]), Figure)
    figure = dynamics.plot_activation_percentiles(activations(), ["plain", "bn"], unit=0, seed=0)
    assert len(figure.axes) == 2
    assert [line.get_ydata().tolist() for line in figure.axes[0].lines[:3]] == [
        [-1, 0, 0.5, 1, 2], [0, 1, 2, 3, 4], [1, 2, 3.5, 5, 6]]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_the_percentile_figure_names_the_probed_activation(activation):
    figure = dynamics.plot_activation_percentiles(activations(), ["plain", "bn"], unit=0, seed=0, activation=activation)
    assert figure.axes[0].get_ylabel() == f"input to the {activation}"
