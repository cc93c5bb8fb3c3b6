"""The rich progress display names the trial each epoch row belongs to."""

import io

from rich.console import Console

from bnlab.config import VariantConfig
from bnlab.runs.progress import RichProgress


def row(variant, seed, epoch):
    return {"variant": variant, "seed": seed, "epoch": epoch, "loss": 0.5, "val_accuracy": 0.9}


def test_title_names_the_trial_of_each_row_even_when_trials_interleave():
    progress = RichProgress(Console(file=io.StringIO(), force_terminal=False))
    pending = [(VariantConfig("no_bn", "no_bn"), 0), (VariantConfig("bn_input", "bn_input"), 0)]
    progress.start(total_trials=2, finished_trials=0, pending=pending, epochs=3)
    try:
        progress.epoch(row("bn_input", 0, 1))  # the second trial reports first, as on Dask
        title = progress.bar.tasks[0].description
        assert title == "trials 0/2 | bn_input seed 0 | epoch 1/3 loss 0.5000 val_acc 0.9000"
        progress.epoch(row("no_bn", 0, 1))
        assert "| no_bn seed 0 | epoch 1/3" in progress.bar.tasks[0].description
        assert progress.bar.tasks[0].completed == 2
    finally:
        progress.stop()
