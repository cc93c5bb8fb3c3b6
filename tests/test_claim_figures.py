"""The claims figure (bnlab.analysis.claim_figures) and its place in the report: every point, interval and
colour checked against the claim rows and the per-seed differences recomputed here."""

import numpy as np
import pytest
import yaml
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.patches import Polygon, Rectangle

from bnlab.analysis.claim_figures import VERDICT_COLORS, plot_claims
from bnlab.analysis.comparisons import evaluate
from bnlab.report.write import write_report
from bnlab.runs.results import load_results
from tests.test_comparisons import claimed_run, write_run


@pytest.fixture
def claimed(tmp_path):
    return claimed_run(tmp_path)


HAND_DIFFERENCES = {  # variant minus baseline per seed, from the numbers of test_comparisons' `claimed` run
    "input_higher": [0.020, 0.018, 0.023, 0.019],
    "input_sooner": [3, 2, 3, 3],
    "after_same": [0.0005, -0.0003, 0.0001, 0.0002],
    "after_higher": [0.0005, -0.0003, 0.0001, 0.0002],
    "after_lower_noisy": [0.01, -0.01, 0.005, -0.008],
}


def test_each_claim_gets_a_panel_with_its_seeds_interval_margin_and_verdict(claimed):
    claims = evaluate(claimed, [], []).claims
    figure = plot_claims(claimed.trials, claims, 0.95)
    assert len(figure.axes) == len(claims) == 5
    for axes, row in zip(figure.axes, claims.to_dict("records")):
        points = next(child for child in axes.get_children() if isinstance(child, PathCollection))
        seeds = sorted(np.asarray(points.get_offsets())[:, 0])
        assert seeds == pytest.approx(sorted(HAND_DIFFERENCES[row["id"]]), abs=1e-12)
        interval = next(line for line in axes.get_lines() if len(line.get_xdata()) == 2 and line.get_linewidth() == 3)
        assert list(interval.get_xdata()) == pytest.approx([row["ci_low"], row["ci_high"]])
        assert axes.get_title(loc="left").startswith(f"{row['id']}: {row['claim_verdict']} (expected {row['expect']}")
        assert tuple(points.get_facecolor()[0][:3]) == to_rgba(VERDICT_COLORS[row["claim_verdict"]])[:3]
        bands = [patch for patch in axes.patches if isinstance(patch, (Polygon, Rectangle))]
        if np.isfinite(row["margin"]):
            (band,) = bands
            xs = band.get_xy()[:, 0] if isinstance(band, Polygon) else [band.get_x(), band.get_x() + band.get_width()]
            assert (min(xs), max(xs)) == pytest.approx((-row["margin"], row["margin"]))
        else:
            assert not bands


def test_a_sign_claim_is_drawn_around_its_median(tmp_path):
    plain = np.array([0.95, 0.10, 0.96, 0.12, 0.30, 0.955, 0.2])
    bn = np.full(7, 0.98)
    claim = {"id": "signed", "statement": "BN trains", "source": "Paper F", "metric": "final_val_accuracy",
             "variant": "bn_before_activation", "baseline": "no_bn", "expect": "higher", "test": "sign"}
    results = load_results(write_run(tmp_path / "run", {"no_bn": {"final_val_accuracy": plain},
                                                        "bn_before_activation": {"final_val_accuracy": bn}},
                                     claims=[claim]))
    (axes,) = plot_claims(results.trials, evaluate(results, [], []).claims, 0.95).axes
    (center,) = [line for line in axes.get_lines() if line.get_marker() == "D"]
    assert center.get_xdata()[0] == pytest.approx(np.median(bn - plain))
    assert "95% interval of the median" in [text.get_text() for text in axes.get_legend().get_texts()]


def test_no_claims_no_figure(claimed):
    with pytest.raises(ValueError, match="expected at least one claim row"):
        plot_claims(claimed.trials, evaluate(claimed, [], []).claims.iloc[:0], 0.95)


def test_the_report_shows_the_claims_figure_only_for_a_run_with_claims(tiny_run_copy):
    write_report(tiny_run_copy)
    assert not (tiny_run_copy / "figures" / "claims.png").exists()
    assert "figures/claims.png" not in (tiny_run_copy / "report.md").read_text()
    config = yaml.safe_load((tiny_run_copy / "config.yaml").read_text())
    config["claims"] = [{"id": "higher", "statement": "BN ends higher", "source": "Paper G",
                         "metric": "final_val_accuracy", "variant": "bn_before_activation", "baseline": "no_bn",
                         "expect": "higher"}]
    (tiny_run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    text = write_report(tiny_run_copy).read_text()
    assert (tiny_run_copy / "figures" / "claims.png").stat().st_size > 0
    claims_section = text.split("## Claims")[1].split("\n## ")[0]
    assert "![Each claim's per-seed differences" in claims_section and "(figures/claims.png)" in claims_section
