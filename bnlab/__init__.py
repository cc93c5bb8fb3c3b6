"""bnlab: controlled experiments on where and how to use batch normalization in Keras.

The public names below are imported on first use (PEP 562), so `import bnlab` does not
import Keras: a backend chosen afterwards through KERAS_BACKEND (as the `bnlab` command
does) still takes effect, exactly as it would without bnlab.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "build_mlp": "bnlab.models",
    "build_model": "bnlab.models",
    "list_variants": "bnlab.variants",
    "get_variant": "bnlab.variants",
    "preprocess_input": "bnlab.variants",
    "load_mnist": "bnlab.data",
    "split_mnist": "bnlab.data",
    "read_idx": "bnlab.data",
    "DataIntegrityError": "bnlab.data",
    "load_config": "bnlab.config",
    "ExperimentConfig": "bnlab.config",
    "ConfigError": "bnlab.config",
    "run_experiment": "bnlab.runner",
    "load_results": "bnlab.results",
    "RunResults": "bnlab.results",
    "list_runs": "bnlab.results",
    "summarize_variants": "bnlab.tables",
    "variant_statistics": "bnlab.stats",
    "paired_differences": "bnlab.stats",
    "target_statistics": "bnlab.stats",
    "kaplan_meier": "bnlab.stats",
    "mcnemar_exact": "bnlab.significance",
    "paired_test": "bnlab.significance",
    "seeds_for_power": "bnlab.significance",
    "evaluate_run": "bnlab.report",
    "plot_validation_accuracy": "bnlab.figures",
    "plot_training_loss": "bnlab.figures",
    "plot_epochs_to_target": "bnlab.figures",
    "plot_epoch_time": "bnlab.figures",
    "plot_overfitting_gap": "bnlab.figures",
    "save_figure": "bnlab.figures",
    "write_report": "bnlab.report",
    "ActivationPercentiles": "bnlab.callbacks",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'bnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
