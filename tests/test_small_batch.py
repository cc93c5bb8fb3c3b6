"""The small-batch study's analysis and report section, on the shared cut of the study (tests/conftest.py)."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bnlab
from bnlab.analysis.small_batch import (
    normalization_batches,
    plot_small_batch,
    small_batch_table,
    varies_normalization_batch,
)


@pytest.fixture(scope="module")
def results(small_batch_run):
    return bnlab.load_results(small_batch_run)


def test_normalization_batch_of_each_variant(results):
    table = normalization_batches(results)
    assert table["variant"].tolist() == ["bn_g2", "bn_g16", "renorm_g4", "layer_norm"]
    assert table["normalizer"].tolist() == ["ghost", "ghost", "renorm", "layer"]
    g = table["normalization_batch"].tolist()
    assert g[:3] == [2, 16, 4] and math.isnan(g[3])  # layer norm takes no statistics over the batch


def test_plain_batch_norm_normalizes_over_the_training_batch(tiny_results):
    table = normalization_batches(tiny_results)
    assert dict(zip(table["variant"], table["normalization_batch"].fillna(-1))) == {
        "no_bn": -1, "bn_before_activation": 32}
    assert not varies_normalization_batch(tiny_results)


def test_table_is_the_seed_mean_of_test_error_with_a_t_interval(results, small_batch_run):
    table = small_batch_table(results).set_index("variant")
    trials = pd.read_csv(small_batch_run / "trials.csv")
    for label in ("bn_g2", "layer_norm"):
        errors = 1.0 - trials.loc[trials["variant"] == label, "test_accuracy"].to_numpy()
        low, high = stats.t.interval(0.95, len(errors) - 1, loc=errors.mean(), scale=stats.sem(errors))
        row = table.loc[label]
        assert row["seeds"] == 2
        np.testing.assert_allclose([row["test_error"], row["ci_low"], row["ci_high"]], [errors.mean(), low, high],
                                   rtol=1e-9, atol=1e-12)


def test_figure_draws_lines_over_g_and_flat_bands(results):
    figure = plot_small_batch(small_batch_table(results))
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {"BN (ghost slices)", "batch renorm", "layer norm"}
    assert list(lines["BN (ghost slices)"].get_xdata()) == [2, 16]
    assert list(lines["layer norm"].get_xdata()) == [2, 16]  # flat across every g of the run
    assert len(set(lines["layer norm"].get_ydata())) == 1


def test_report_has_the_section_and_its_figure(small_batch_run, tmp_path):
    run_dir = shutil.copytree(small_batch_run, tmp_path / "run")
    report = bnlab.write_report(run_dir).read_text()
    assert "## Small normalization batches (Wu & He 2018, Fig. 1)" in report
    assert "![test error against the normalization batch](figures/small_batch.png)" in report
    assert (run_dir / "figures" / "small_batch.png").stat().st_size > 10_000
    assert "bn_fails_at_g2" in report


def test_variance_ratio_table_is_the_median_of_the_discrepancy_table(results, small_batch_run):
    from bnlab.analysis.small_batch import variance_ratio_table

    table = variance_ratio_table(results).set_index("variant")
    discrepancy = pd.read_csv(small_batch_run / "bn_discrepancy.csv")
    assert list(table.index) == ["bn_g2", "bn_g16", "renorm_g4"]  # layer norm keeps no moving statistics
    for label, g in (("bn_g2", 2), ("bn_g16", 16), ("renorm_g4", 4)):
        rows = discrepancy[discrepancy["variant"] == label]
        assert table.loc[label, "layers"] == 2
        assert table.loc[label, "variance_ratio"] == pytest.approx(rows["variance_ratio_median"].median())
        assert table.loc[label, "expected"] == pytest.approx((g - 1) / g)
