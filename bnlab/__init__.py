"""bnlab: controlled experiments on where and how to use batch normalization in Keras.

The public names below are imported on first use (PEP 562), so `import bnlab` does not
import Keras: a backend chosen afterwards through KERAS_BACKEND (as the `bnlab` command
does) still takes effect, exactly as it would without bnlab.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "build_mlp": "bnlab.models.builders",
    "build_model": "bnlab.models.builders",
    "list_variants": "bnlab.models.variants",
    "get_variant": "bnlab.models.variants",
    "preprocess_input": "bnlab.models.variants",
    "register_variant": "bnlab.models.variants",
    "unregister_variant": "bnlab.models.variants",
    "list_normalizers": "bnlab.models.normalizers",
    "GhostBatchNormalization": "bnlab.models.layers",
    "BatchRenormalization": "bnlab.models.layers",
    "WeightNormDense": "bnlab.models.layers",
    "precise_bn": "bnlab.models.population",
    "bn_discrepancy": "bnlab.models.population",
    "load_mnist": "bnlab.data.mnist",
    "split_mnist": "bnlab.data.splits",
    "read_idx": "bnlab.data.idx",
    "DataIntegrityError": "bnlab.data.idx",
    "load_config": "bnlab.config",
    "ExperimentConfig": "bnlab.config",
    "ConfigError": "bnlab.config",
    "run_experiment": "bnlab.runs.experiment",
    "load_results": "bnlab.runs.results",
    "RunResults": "bnlab.runs.results",
    "list_runs": "bnlab.runs.results",
    "load_runs": "bnlab.runs.results",
    "summarize_variants": "bnlab.analysis.summary",
    "variant_statistics": "bnlab.analysis.stats",
    "paired_differences": "bnlab.analysis.stats",
    "target_statistics": "bnlab.analysis.survival",
    "kaplan_meier": "bnlab.analysis.survival",
    "mcnemar_exact": "bnlab.analysis.significance",
    "paired_test": "bnlab.analysis.significance",
    "seeds_for_power": "bnlab.analysis.significance",
    "evaluate_run": "bnlab.report.write",
    "plot_validation_accuracy": "bnlab.analysis.figures",
    "plot_training_loss": "bnlab.analysis.figures",
    "plot_epochs_to_target": "bnlab.analysis.seed_figures",
    "plot_epoch_time": "bnlab.analysis.seed_figures",
    "plot_overfitting_gap": "bnlab.analysis.seed_figures",
    "save_figure": "bnlab.analysis.figures",
    "write_report": "bnlab.report.write",
    "ActivationPercentiles": "bnlab.training.probes",
    "gradient_norms": "bnlab.training.gradients",
    "loss_and_gradients": "bnlab.training.gradients",
    "landscape_step": "bnlab.training.landscape",
    "covariate_shift": "bnlab.training.landscape",
    "LandscapeProbe": "bnlab.training.mechanism_probes",
    "CovariateShiftProbe": "bnlab.training.mechanism_probes",
    "KernelNorms": "bnlab.training.scale",
    "normalized_kernels": "bnlab.training.scale",
    "restrict_weight_decay": "bnlab.training.scale",
    "NoisyBatchNormalization": "bnlab.models.noise",
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
