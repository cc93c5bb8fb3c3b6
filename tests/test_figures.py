import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from bnlab.analysis import figures, seed_figures  # noqa: E402

VARIANTS = ["no_bn", "bn_after_activation", "bn_input"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_epochs():
    """3 variants x 2 seeds x 3 epochs.

    The training-mode gap is 1 point at every epoch; the inference-mode gap is 0.4 points
    per epoch, so the two columns and the final and best epochs all give different bars.
    """
    rows = []
    for offset, variant in enumerate(VARIANTS):
        for seed in (0, 1):
            for epoch in (1, 2, 3):
                val = 0.90 + 0.025 * epoch + 0.005 * offset + 0.002 * seed
                rows.append({
                    "variant": variant, "seed": seed, "epoch": epoch,
                    "loss": 10.0 ** -epoch * (1 + seed),
                    "accuracy": val + 0.01,
                    "val_loss": 0.1, "val_accuracy": val,
                    "train_eval_loss": 0.05,
                    "train_eval_accuracy": val + 0.004 * epoch,
                })
    return pd.DataFrame(rows)


def make_trials():
    """Steady epoch seconds: no_bn 2.0 (both seeds), bn_after 3.0, bn_input 1.4 and 1.6."""
    seconds = {"no_bn": [2.0, 2.0], "bn_after_activation": [3.0, 3.0], "bn_input": [1.4, 1.6]}
    rows = [
        {"variant": variant, "seed": seed, "status": "complete", "epochs_run": 3,
         "best_epoch": 2, "steady_epoch_seconds": seconds[variant][seed]}
        for variant in VARIANTS for seed in (0, 1)
    ]
    return pd.DataFrame(rows)


def make_targets(reached_by_all=False):
    """Two targets; unless `reached_by_all`, bn_input seed 1 never reaches 0.95."""
    rows = []
    for variant in VARIANTS:
        for seed in (0, 1):
            rows.append((variant, seed, 0.9, True, 1))
            missed = variant == "bn_input" and seed == 1 and not reached_by_all
            rows.append((variant, seed, 0.95, not missed, None if missed else 2))
    return pd.DataFrame(
        rows, columns=["variant", "seed", "target", "reached", "epochs_to_target"]
    )


def line_labels(axes):
    return [line.get_label() for line in axes.get_lines() if not line.get_label().startswith("_")]


def texts(figure):
    return [text.get_text() for axes in figure.axes for text in axes.texts]


# colours


def test_variant_colors_follow_the_given_order():
    colors = figures.variant_colors(["x", "y", "z"])
    assert colors["x"] == to_rgba("C0")[:3]
    assert colors["z"] == to_rgba("C2")[:3]


def test_colours_are_the_same_in_every_figure():
    epochs, trials = make_epochs(), make_trials()
    lines = figures.plot_validation_accuracy(epochs, VARIANTS).axes[0].get_lines()
    bars = seed_figures.plot_epoch_time(trials, variants=VARIANTS).axes[0].containers
    for line, container in zip(lines, bars):
        assert to_rgba(line.get_color()) == container.patches[0].get_facecolor()


def test_a_variant_missing_from_the_data_keeps_the_others_colours():
    epochs = make_epochs()
    epochs = epochs[epochs["variant"] != "bn_after_activation"]
    axes = figures.plot_validation_accuracy(epochs, VARIANTS).axes[0]
    assert line_labels(axes) == ["no_bn", "bn_input"]
    assert to_rgba(axes.get_lines()[1].get_color()) == to_rgba("C2")


# validation accuracy and training loss


def test_validation_accuracy_one_line_per_variant_with_labels():
    figure = figures.plot_validation_accuracy(make_epochs(), VARIANTS)
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert line_labels(axes) == VARIANTS
    assert axes.get_xlabel() == "epoch"
    assert axes.get_ylabel() == "validation accuracy (fraction correct)"
    assert "Validation accuracy per epoch" in axes.get_title()
    assert "band: min to max" in axes.get_title()
    assert [t.get_text() for t in axes.get_legend().get_texts()] == VARIANTS


def test_validation_accuracy_line_is_the_mean_over_seeds():
    axes = figures.plot_validation_accuracy(make_epochs(), VARIANTS).axes[0]
    no_bn = axes.get_lines()[0]
    assert no_bn.get_ydata() == pytest.approx([0.926, 0.951, 0.976])


def test_validation_accuracy_is_zoomed_not_zero_to_one():
    bottom, top = figures.plot_validation_accuracy(make_epochs(), VARIANTS).axes[0].get_ylim()
    assert 0.9 < bottom < 0.925
    assert 0.987 < top <= 1.0


def test_validation_accuracy_ignores_a_far_outlier_for_the_limits():
    epochs = make_epochs()
    epochs.loc[0, "val_accuracy"] = 0.1  # a seed that collapsed
    bottom, _ = figures.plot_validation_accuracy(epochs, VARIANTS).axes[0].get_ylim()
    assert bottom > 0.5


def test_validation_accuracy_draws_a_band_per_variant():
    axes = figures.plot_validation_accuracy(make_epochs(), VARIANTS).axes[0]
    assert len(axes.collections) == len(VARIANTS)


def test_training_loss_log_scale_by_default():
    figure = figures.plot_training_loss(make_epochs(), VARIANTS)
    axes = figure.axes[0]
    assert axes.get_yscale() == "log"
    assert line_labels(axes) == VARIANTS
    assert axes.get_xlabel() == "epoch"
    assert axes.get_ylabel() == "training loss (cross-entropy, nats, log scale)"
    assert axes.get_title().startswith("Training loss per evaluation (training mode, mean over the steps since")


def test_training_loss_linear_when_asked_and_skips_nan():
    epochs = make_epochs()
    epochs.loc[5, "loss"] = float("nan")  # a diverged epoch
    axes = figures.plot_training_loss(epochs, VARIANTS, log_scale=False).axes[0]
    assert axes.get_yscale() == "linear"
    assert axes.get_ylabel() == "training loss (cross-entropy, nats)"
    assert np.isfinite(axes.get_lines()[0].get_ydata()).all()


def test_line_plots_take_table_order_without_variants():
    epochs = make_epochs().iloc[::-1]
    axes = figures.plot_training_loss(epochs).axes[0]
    assert line_labels(axes) == VARIANTS[::-1]


# epochs to target


def not_reached_markers(axes):
    return [c for c in axes.collections if c.get_label() == "not reached"]


def test_epochs_to_target_one_panel_per_target():
    figure = seed_figures.plot_epochs_to_target(make_targets(), make_trials(), VARIANTS)
    assert isinstance(figure, Figure)
    assert [axes.get_title() for axes in figure.axes] == [
        "validation accuracy \u2265 0.9", "validation accuracy \u2265 0.95"
    ]
    assert figure.axes[0].get_ylabel() == "epochs to target (epoch of first crossing)"
    assert figure.axes[0].get_xlabel() == "variant"
    assert "Epochs to reach" in figure.get_suptitle()


def test_epochs_to_target_marks_the_unreached_seed_hollow_above_the_last_epoch():
    figure = seed_figures.plot_epochs_to_target(make_targets(), make_trials(), VARIANTS)
    first, second = figure.axes
    assert not_reached_markers(first) == []
    (marker,) = not_reached_markers(second)
    assert len(marker.get_facecolor()) == 0  # hollow
    (x, y), = marker.get_offsets()
    assert y > 3  # beyond the 3 epochs run
    assert "not reached" in [label.get_text() for label in first.get_yticklabels()]  # shared
    tick_texts = [label.get_text() for label in second.get_xticklabels()]
    assert tick_texts[2] == "bn_input\n1/2 reached"
    assert tick_texts[0] == "no_bn\n2/2 reached"
    legend_texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend_texts == ["reached (one seed)", "not reached within the run"]


def test_epochs_to_target_all_reached_draws_no_hollow_marker():
    figure = seed_figures.plot_epochs_to_target(make_targets(reached_by_all=True), make_trials())
    assert all(not_reached_markers(axes) == [] for axes in figure.axes)


def test_epochs_to_target_sets_tied_seeds_side_by_side():
    figure = seed_figures.plot_epochs_to_target(make_targets(), make_trials(), VARIANTS)
    reached = [c for c in figure.axes[0].collections if c.get_label() == "no_bn reached"][0]
    xs = reached.get_offsets()[:, 0]
    assert len(set(xs)) == 2 and abs(xs[0] - xs[1]) < 0.2


# epoch time


def test_epoch_time_bars_and_exact_ratios():
    figure = seed_figures.plot_epoch_time(make_trials(), variants=VARIANTS)
    axes = figure.axes[0]
    assert [type(c) for c in axes.containers] == [BarContainer] * 3
    assert [c.get_label() for c in axes.containers] == VARIANTS
    assert [c.patches[0].get_height() for c in axes.containers] == pytest.approx([2.0, 3.0, 1.5])
    assert texts(figure) == ["1.00x", "1.50x", "0.75x"]
    assert axes.get_ylabel() == "training time per epoch (seconds, epochs 2..n)"
    assert "relative to no_bn" in axes.get_title()


def test_epoch_time_draws_every_seed():
    axes = seed_figures.plot_epoch_time(make_trials(), variants=VARIANTS).axes[0]
    points = np.concatenate([c.get_offsets()[:, 1] for c in axes.collections])
    assert sorted(points) == pytest.approx([1.4, 1.6, 2.0, 2.0, 3.0, 3.0])


def test_epoch_time_other_baseline():
    figure = seed_figures.plot_epoch_time(make_trials(), baseline="bn_input", variants=VARIANTS)
    assert texts(figure) == ["1.33x", "2.00x", "1.00x"]


def test_epoch_time_without_baseline_has_no_ratios():
    trials = make_trials()
    figure = seed_figures.plot_epoch_time(trials[trials["variant"] != "no_bn"], variants=VARIANTS)
    assert texts(figure) == []
    assert len(figure.axes[0].containers) == 2
    assert "no baseline" in figure.axes[0].get_title()


# overfitting gap


def test_overfitting_gap_two_panels_with_a_bar_group_per_mode():
    figure = seed_figures.plot_overfitting_gap(make_epochs(), make_trials(), VARIANTS)
    assert isinstance(figure, Figure)
    final, best = figure.axes
    assert final.get_title() == "at the final epoch"
    assert best.get_title() == "at the epoch of best validation accuracy"
    assert final.get_ylabel() == "training minus validation accuracy (percentage points)"
    for axes in (final, best):
        assert [c.get_label() for c in axes.containers] == [
            "training mode (Keras accuracy)", "inference mode (training set re-evaluated)"
        ]
        assert all(len(c.patches) == len(VARIANTS) for c in axes.containers)
    legend_texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend_texts == ["training mode (Keras accuracy)",
                            "inference mode (training set re-evaluated)"]


def test_overfitting_gap_bar_heights_in_percentage_points():
    final, best = seed_figures.plot_overfitting_gap(make_epochs(), make_trials(), VARIANTS).axes
    training_mode, inference_mode = final.containers
    assert [p.get_height() for p in training_mode.patches] == pytest.approx([1.0] * 3)
    assert [p.get_height() for p in inference_mode.patches] == pytest.approx([1.2] * 3)
    assert best.containers[1].patches[0].get_height() == pytest.approx(0.8)  # best epoch 2


def test_overfitting_gap_leaves_out_diverged_trials():
    epochs, trials = make_epochs(), make_trials()
    trials.loc[(trials["variant"] == "no_bn") & (trials["seed"] == 1), "status"] = "diverged"
    epochs.loc[(epochs["variant"] == "no_bn") & (epochs["seed"] == 1), "accuracy"] = 0.0
    final, _ = seed_figures.plot_overfitting_gap(epochs, trials, VARIANTS).axes
    assert final.containers[0].patches[0].get_height() == pytest.approx(1.0)


# save_figure and errors


def test_save_figure_writes_a_png_and_creates_the_folder(tmp_path):
    figure = seed_figures.plot_epoch_time(make_trials(), variants=VARIANTS)
    path = figures.save_figure(figure, tmp_path / "new" / "folder" / "time.png")
    assert path == tmp_path / "new" / "folder" / "time.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_save_figure_keeps_a_title_wider_than_the_figure(tmp_path):
    figure = Figure(figsize=(3, 2), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title("A title far wider than a figure three inches wide, as with a legend outside the axes")
    path = figures.save_figure(figure, tmp_path / "wide.png")
    width = int.from_bytes(path.read_bytes()[16:20], "big")  # the PNG header's image width
    renderer = FigureCanvasAgg(figure).get_renderer()
    assert width >= axes.title.get_window_extent(renderer).width * figures.DPI / figure.dpi


def test_save_figure_rejects_other_suffixes(tmp_path):
    figure = seed_figures.plot_epoch_time(make_trials(), variants=VARIANTS)
    with pytest.raises(ValueError, match=r"ending in '.png'.*time.pdf"):
        figures.save_figure(figure, tmp_path / "time.pdf")


def test_missing_column_is_named_in_the_error():
    epochs = make_epochs().drop(columns=["val_accuracy"])
    with pytest.raises(ValueError, match=r"missing required columns: \['val_accuracy'\]"):
        figures.plot_validation_accuracy(epochs)


def test_empty_table_is_an_error():
    with pytest.raises(ValueError, match="non-empty trials table"):
        seed_figures.plot_epoch_time(make_trials().iloc[:0])


def test_epochs_to_target_in_step_mode_counts_steps_and_names_the_set():
    figure = seed_figures.plot_epochs_to_target(make_targets(), make_trials(), VARIANTS, every_steps=500,
                                                measured_on="test")
    axes = figure.axes[0]
    assert axes.get_ylabel() == "steps to target (evaluation of first crossing)"
    assert axes.get_title().startswith("test accuracy")
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels[:2] == ["500", "1,000"] and labels[-1] == "not reached"
    assert figure.get_suptitle() == "Steps to reach a test accuracy target (one point per seed)"
