"""The mechanisms studies end to end: the `probes` config section, claims on probe figures and across grid
points (`baseline_at`), the probe tables of a run, their per-trial figures checked against an independent
computation (scipy), the report section, and a trial that trains the same with and without its probes."""

from __future__ import annotations

import dataclasses
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

import bnlab
from bnlab.analysis.mechanisms import YANG_RELU_GROWTH, growth_table
from bnlab.config import ConfigError, VariantConfig
from bnlab.config.grid import value_text
from bnlab.config.probes import PROBE_METRICS, PROBES
from bnlab.training.mechanisms import final_kernels, init_gradient_growth
from bnlab.training.trial import _compile, _optimizer, load_splits, train_trial

STUDIES = ("init_gradients", "santurkar2018", "weight_decay")


def _tiny(**changes) -> dict:
    data = yaml.safe_load(bnlab.config.resolve_config_path("tiny").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize("name", STUDIES)
def test_study_configs_load_with_claims_on_probe_figures(name):
    config = bnlab.load_config(name)
    assert config.claims and config.probes
    metrics = {metric for probe in config.probes for metric in PROBE_METRICS[probe]}
    assert {claim.metric for claim in config.claims} & metrics


def test_probes_section_defaults_and_round_trip():
    config = bnlab.load_config(_tiny(probes={"init_gradients": None, "landscape": {"step_sizes": [0.1, 0.2]}}))
    assert set(config.probes) == {"init_gradients", "landscape"}
    assert config.probes["init_gradients"].examples == 512
    assert config.probes["landscape"].step_sizes == (0.1, 0.2) and config.probes["landscape"].every_n_steps is None
    assert bnlab.load_config(config.to_dict()).probes == config.probes
    assert "probes" not in bnlab.load_config("tiny").to_dict()


@pytest.mark.parametrize("probes, message", [
    ({"hessian": {}}, "probes.hessian: expected no such key; allowed here: " + ", ".join(PROBES)),
    ({"landscape": {"every": 3}}, "probes.landscape.every: expected no such key; allowed here: examples, "
                                  "every_n_steps, step_sizes"),
    ({"landscape": {"step_sizes": [0.1, -1]}}, "probes.landscape.step_sizes: expected null (the learning rate "
                                               "times 0.5, 1, 2, 4) or a non-empty list of positive numbers"),
    ({"init_gradients": {"examples": 0}}, "probes.init_gradients.examples: expected a positive integer"),
    ({"kernel_norms": 5}, "probes.kernel_norms: expected a mapping with any of every_n_steps"),
])
def test_bad_probe_settings_get_one_line_each(probes, message):
    with pytest.raises(ConfigError) as caught:
        bnlab.load_config(_tiny(probes=probes))
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(f"<config>: {message}")


def test_a_claim_on_a_probe_figure_needs_the_probe():
    claim = {"id": "c", "statement": "s", "source": "t", "metric": "mean_beta_smoothness", "variant": "no_bn",
             "baseline": "bn_input", "expect": "lower"}
    with pytest.raises(ConfigError) as caught:
        bnlab.load_config(_tiny(claims=[claim]))
    assert "needs the probe probes.landscape" in str(caught.value)
    assert bnlab.load_config(_tiny(claims=[claim], probes={"landscape": {}})).claims[0].metric == "mean_beta_smoothness"


def test_baseline_at_compares_one_variant_at_two_grid_points():
    grid = {"training.optimizer.learning_rate": [0.01, 0.1]}
    claim = {"id": "c", "statement": "s", "source": "t", "metric": "test_accuracy", "variant": "no_bn",
             "baseline": "no_bn", "expect": "higher", "at": {"training.optimizer.learning_rate": 0.1},
             "baseline_at": {"training.optimizer.learning_rate": 0.01}}
    (parsed,) = bnlab.load_config(_tiny(grid=grid, claims=[claim])).claims
    assert parsed.labels() == ("no_bn-learning_rate0.1", "no_bn-learning_rate0.01")
    same_point = {**claim, "baseline_at": claim["at"]}
    with pytest.raises(ConfigError, match="a baseline_at other than at"):
        bnlab.load_config(_tiny(grid=grid, claims=[same_point]))
    with pytest.raises(ConfigError, match=r"claims\[0\].baseline_at.training.optimizer.learning_rate: expected one"):
        bnlab.load_config(_tiny(grid=grid, claims=[{**claim, "baseline_at": {"training.optimizer.learning_rate": 3}}]))


def test_deep_networks_get_short_labels():
    assert value_text([1000] * 50) == "1000x50"
    assert value_text([784, 100, 100, 100, 100, 10]) == "784-100x4-10"
    assert value_text([1000, 1000, 1000]) == "1000-1000-1000"  # labels of shorter runs are unchanged


def test_growth_is_the_per_layer_factor_toward_the_input():
    depth = np.arange(1, 9)
    table = pd.DataFrame({"depth": depth, "squared_norm": 7.0 * 1.5 ** (8 - depth)})
    table.loc[0, "squared_norm"] = 1e9  # the first and last kernels are left out of the fit
    table.loc[7, "squared_norm"] = 1e-9
    assert init_gradient_growth(table) == pytest.approx(1.5)
    assert math.isnan(init_gradient_growth(table.head(3)))  # under two inner kernels


def test_final_kernels_average_the_kernels_feeding_bn_at_the_last_record():
    table = pd.DataFrame({"step": [0, 0, 5, 5, 5], "normalized": [True, False, True, True, False],
                          "kernel_norm": [1.0, 1.0, 2.0, 4.0, 9.0], "effective_learning_rate": [1, 1, 0.25, 0.0625, 9]})
    assert final_kernels(table) == {"final_kernel_norm": 3.0, "final_effective_learning_rate": 0.15625}
    assert final_kernels(table.assign(normalized=False))["final_kernel_norm"] == 5.0  # no BN: every kernel


def test_a_run_records_every_probe_table(mechanisms_run, mechanisms_config):
    results = bnlab.load_results(mechanisms_run)
    assert set(results.probes) == set(PROBES)
    trials = len(mechanisms_config.trials)
    init = results.probes["init_gradients"]
    assert len(init) == 4 * trials and sorted(init["depth"].unique()) == [1, 2, 3, 4]
    assert (init["squared_norm"] > 0).all()
    landscape = results.probes["landscape"]
    assert sorted(landscape["step"].unique()) == [0, 4, 8]  # step 0 and every 4 of 8 steps
    assert (landscape["loss_range"] >= 0).all()
    assert set(results.probes["covariate_shift"]["depth"]) == {2, 3, 4}  # the first kernel has nothing below it
    kernels = results.probes["kernel_norms"]
    feeding = kernels[kernels["variant"].str.startswith("bn-")].groupby("layer")["normalized"].first()
    assert feeding.sum() == 3  # the three hidden kernels of BN before ReLU; not the softmax's
    metrics = [metric for probe in PROBES for metric in PROBE_METRICS[probe]]
    assert np.isfinite(results.trials[metrics].to_numpy(float)).all()


def test_trial_growth_matches_an_independent_fit(mechanisms_run):
    results = bnlab.load_results(mechanisms_run)
    init = results.probes["init_gradients"]
    for (variant, seed), group in init.groupby(["variant", "seed"]):
        inner = group[group["depth"].between(2, 3)]
        slope = stats.linregress(inner["depth"], np.log(inner["squared_norm"])).slope
        recorded = results.trials.set_index(["variant", "seed"]).loc[(variant, seed), "init_gradient_growth"]
        assert recorded == pytest.approx(math.exp(-slope), rel=1e-9)
    table = growth_table(results)
    assert list(table["seeds"]) == [2] * len(table)
    assert table["yang_in_interval"].tolist() == [lo <= YANG_RELU_GROWTH <= hi
                                                  for lo, hi in zip(table["ci_low"], table["ci_high"])]


@pytest.mark.parametrize("on, decayed", [
    ("normalized_kernels", {f"bn_before_activation/hidden_{layer}/kernel" for layer in (1, 2, 3)}),
    ("all", None),  # Keras's default: every trainable variable
])
def test_a_trial_decays_only_the_chosen_variables(mechanisms_config, on, decayed):
    # one step of the trial's own optimizer with zero gradients: a decayed variable becomes w (1 - lr wd), the rest stay
    variant = next(v for v in mechanisms_config.trial_variants if v.label == "bn-weight_decay0.01")
    training = dataclasses.replace(mechanisms_config.training_for(variant), weight_decay_on=on)
    model = bnlab.build_model(variant.name, **variant.overrides)
    _compile(model, _optimizer(training.optimizer), training)
    before = [variable.numpy().copy() for variable in model.trainable_variables]
    model.optimizer.apply_gradients([(np.zeros_like(w), v) for w, v in zip(before, model.trainable_variables)])
    shrunk = {v.path for w, v in zip(before, model.trainable_variables) if not np.array_equal(v.numpy(), w)}
    assert shrunk == (decayed or {v.path for v in model.trainable_variables if v.numpy().any()})
    for w, v in zip(before, model.trainable_variables):
        factor = 1 - 0.05 * 0.01 if v.path in shrunk else 1.0
        np.testing.assert_allclose(v.numpy(), w * factor, rtol=1e-6)


def test_report_has_the_mechanisms_section_and_the_probe_claims(mechanisms_run, tmp_path):
    evaluation = bnlab.evaluate_run(bnlab.load_results(mechanisms_run))
    assert list(evaluation.claims["id"]) == ["explodes", "smoother", "decay_raises_lr"]
    assert evaluation.claims["verdict"].notna().all()
    report = bnlab.write_report(shutil.copytree(mechanisms_run, tmp_path / "run"))
    text = report.read_text()
    assert "## Why BN helps: the probes" in text
    for figure in ("init_gradients", "landscape", "covariate_shift", "kernel_norms"):
        assert (report.parent / "figures" / f"{figure}.png").stat().st_size > 10_000, figure


def test_a_trial_trains_the_same_with_and_without_its_probes(mechanisms_config):
    # noisy BN: the probes must not even advance its noise's seed generator
    deep = {"hidden_units": [32, 32, 32], "kernel_initializer": "he_normal"}  # as the fixture's variants
    variant = VariantConfig("noisy_bn_before_activation", "noisy_bn", deep)
    splits = load_splits(mechanisms_config)
    probed = train_trial(mechanisms_config, variant, 0, splits)
    plain = train_trial(dataclasses.replace(mechanisms_config, probes={}), variant, 0, splits)
    assert set(probed.probe_tables) == set(PROBES) and not plain.probe_tables
    columns = ["loss", "accuracy", "val_loss", "val_accuracy", "train_eval_loss", "train_eval_accuracy"]
    pd.testing.assert_frame_equal(probed.epochs[columns], plain.epochs[columns])
    assert (probed.test_predictions.predicted == plain.test_predictions.predicted).all()
    pd.testing.assert_frame_equal(probed.discrepancy, plain.discrepancy)  # BN's moving statistics too
