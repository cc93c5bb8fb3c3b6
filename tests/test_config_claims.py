"""The `analysis` and `claims` sections: defaults, the claims' checks against variants, targets and
grid, one exact line per problem, and the round trip through `to_dict`."""

import copy
import dataclasses

import pytest
import yaml

from bnlab.config import (
    CLAIM_METRICS,
    AnalysisConfig,
    ClaimConfig,
    ConfigError,
    claim_metrics,
    list_configs,
    load_config,
)
from bnlab.config.claims import parse_claims
from bnlab.config.metrics import ACCURACY_METRICS
from bnlab.config.problems import Problems

BASE = {
    "name": "claims",
    "variants": ["no_bn", {"name": "bn_before_activation", "label": "bn"}],
    "seeds": 2,
    "training": {"epochs": 2, "batch_size": 60, "optimizer": {"name": "sgd", "learning_rate": 0.5}},
    "targets": [0.98, 0.97],
}
LR = "training.optimizer.learning_rate"
GRID = {**BASE, "grid": {LR: [0.01, 0.1, 1.0]}}  # as in configs/lr_sweep.yaml
CLAIM = {
    "statement": "BN reaches 97% validation accuracy in fewer epochs",
    "source": "Ioffe & Szegedy 2015, sec. 4.1, Fig. 1(a)",
    "metric": "epochs_to_0.97",
    "variant": "bn",
    "baseline": "no_bn",
    "expect": "lower",
}
ALL_METRICS = (
    "test_accuracy, best_val_accuracy, final_val_accuracy, final_train_eval_accuracy, final_train_mode_accuracy, "
    "final_accuracy_gap, final_loss_gap, best_accuracy_gap, steady_epoch_seconds, first_epoch_seconds, "
    "total_train_seconds, "
    "epochs_to_0.97, steps_to_0.97, seconds_to_0.97, epochs_to_0.98, steps_to_0.98, seconds_to_0.98"
)
ACCURACIES = ("test_accuracy, best_val_accuracy, final_val_accuracy, final_train_eval_accuracy, "
              "final_train_mode_accuracy")
SAME_VARIANT = ("a variant label other than claims[0].variant (bn): a claim compares two variants, or one variant on "
                "two metrics (a baseline_metric other than metric) or at two grid points (a baseline_at other than at)")
CLAIM_KEYS = "id, statement, source, metric, variant, baseline, baseline_metric, expect, margin, at, baseline_at, test"


def config_data(claims=None, base=BASE, analysis=None):
    data = copy.deepcopy(base)
    if claims is not None:
        data["claims"] = copy.deepcopy(claims)
    if analysis is not None:
        data["analysis"] = analysis
    return data


def claim(**changes):
    """CLAIM with keys changed; a value of None removes the key."""
    data = {**CLAIM, **changes}
    return {key: value for key, value in data.items() if value is not None}


def problems(data):
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    return caught.value.problems


# ---- valid claims and defaults


def test_without_the_sections_the_defaults_apply():
    config = load_config(config_data())
    assert config.analysis == AnalysisConfig(equivalence_margin=None, alpha=0.05, confidence=0.95,
                                             bootstrap_resamples=2000)
    assert config.claims == ()


def test_a_claim_in_a_plain_config():
    config = load_config(config_data([CLAIM]))
    assert config.claims == (ClaimConfig(
        id="claim1", statement=CLAIM["statement"], source=CLAIM["source"], metric="epochs_to_0.97",
        variant="bn", baseline="no_bn", expect="lower", margin=None, at={}),)
    assert config.claims[0].labels() == ("bn", "no_bn")


def test_a_claim_in_a_grid_config_names_the_grid_trials():
    config = load_config(config_data([claim(at={LR: 1})], base=GRID))  # 1 names the grid's 1.0
    (parsed,) = config.claims
    assert parsed.at == {LR: 1.0} and type(parsed.at[LR]) is float  # the grid's own value, as the trials have it
    assert parsed.labels() == ("bn-learning_rate1", "no_bn-learning_rate1")
    trial_labels = {variant.label for variant in config.trial_variants}
    assert set(parsed.labels()) <= trial_labels


def test_claim_is_frozen():
    config = load_config(config_data([CLAIM]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.claims[0].metric = "test_accuracy"


def test_ids_default_to_positions_and_may_be_given():
    config = load_config(config_data([CLAIM, claim(id="speed", metric="steady_epoch_seconds"), CLAIM]))
    assert [c.id for c in config.claims] == ["claim1", "speed", "claim3"]


def test_margin_defaults_to_the_analysis_margin_and_a_claim_may_override_it():
    claims = [claim(expect="equivalent", metric="test_accuracy"), claim(margin=0.01, metric="test_accuracy")]
    config = load_config(config_data(claims, analysis={"equivalence_margin": 0.003}))
    assert [c.margin for c in config.claims] == [0.003, 0.01]


def test_analysis_values_are_read():
    section = {"equivalence_margin": 0.003, "alpha": 0.01, "confidence": 0.99, "bootstrap_resamples": 100}
    assert load_config(config_data(analysis=section)).analysis == AnalysisConfig(0.003, 0.01, 0.99, 100)


def test_every_metric_is_accepted():
    metrics = claim_metrics((0.97, 0.98))
    assert metrics[:len(CLAIM_METRICS)] == CLAIM_METRICS
    assert ", ".join(metrics) == ALL_METRICS
    config = load_config(config_data([claim(metric=metric) for metric in metrics]))
    assert [c.metric for c in config.claims] == list(metrics)


# ---- one variant on two metrics, and the metrics of evaluation modes

PRECISE = "final_val_accuracy_precise_bn"
PRECISE_CLAIM = claim(id="precise_beats_moving", metric=PRECISE, baseline="bn", baseline_metric="final_val_accuracy",
                      expect="higher")


def parsed(claims, modes=()):
    """(claims, problem lines) of `parse_claims` on BASE's labels and targets, with an analysis margin of 0.003."""
    problems = Problems("<config>", set())
    result = parse_claims({"claims": claims}, ("no_bn", "bn"), (0.97, 0.98), {}, AnalysisConfig(0.003), problems,
                          modes=modes)
    return result, problems.lines


def test_a_claim_may_compare_two_metrics_of_one_variant():
    config = load_config(config_data([claim(metric="best_val_accuracy", baseline="bn", expect="equivalent",
                                            baseline_metric="final_val_accuracy")],
                                     analysis={"equivalence_margin": 0.003}))
    assert config.claims == (ClaimConfig(
        id="claim1", statement=CLAIM["statement"], source=CLAIM["source"], metric="best_val_accuracy",
        variant="bn", baseline="bn", expect="equivalent", margin=0.003, at={}, baseline_metric="final_val_accuracy"),)
    assert config.claims[0].labels() == ("bn", "bn")


def test_a_baseline_metric_equal_to_the_metric_is_no_baseline_metric():
    config = load_config(config_data([claim(baseline_metric="epochs_to_0.97")]))
    assert config.claims[0].baseline_metric is None
    assert config.claims == load_config(config_data([CLAIM])).claims


def test_evaluation_modes_add_their_accuracy_metrics():
    assert claim_metrics((0.97,), ("batch_statistics", "precise_bn")) == (
        *CLAIM_METRICS, "final_val_accuracy_batch_statistics", PRECISE, "epochs_to_0.97", "steps_to_0.97",
        "seconds_to_0.97")
    assert PRECISE in ACCURACY_METRICS and "final_val_accuracy_batch_statistics" in ACCURACY_METRICS


def test_an_evaluation_mode_metric_is_valid_with_its_mode():
    claims, lines = parsed([PRECISE_CLAIM, claim(metric=PRECISE, expect="equivalent")], modes=("precise_bn",))
    assert lines == []
    assert claims[0] == ClaimConfig("precise_beats_moving", CLAIM["statement"], CLAIM["source"], PRECISE, "bn", "bn",
                                    "higher", margin=0.003, baseline_metric="final_val_accuracy")
    assert claims[1].margin == 0.003 and claims[1].baseline_metric is None  # the accuracy margin applies


def test_an_evaluation_mode_metric_without_its_mode_names_evaluation_modes():
    claims, lines = parsed([PRECISE_CLAIM, claim(metric="test_accuracy", baseline_metric=PRECISE)])
    assert claims == ()
    assert lines == [
        f"<config>: claims[0].metric: expected one of {ALL_METRICS} (the per-trial figures of the trials table); "
        f"{PRECISE} needs evaluation.modes to include precise_bn, received the string '{PRECISE}'.",
        f"<config>: claims[1].baseline_metric: expected a metric in the units of claims[1].metric (test_accuracy: "
        f"accuracy): one of {ACCURACIES}; {PRECISE} needs evaluation.modes to include precise_bn, received the "
        f"string '{PRECISE}'.",
    ]
    _, lines = parsed([claim(metric="final_val_accuracy_batch_statistics")], modes=("precise_bn",))
    assert lines[0].endswith("; final_val_accuracy_batch_statistics needs evaluation.modes to include "
                             "batch_statistics, received the string 'final_val_accuracy_batch_statistics'.")


def test_round_trip_of_a_claim_on_two_metrics():
    claims, _ = parsed([PRECISE_CLAIM, CLAIM], modes=("precise_bn",))
    plain = [parsed_claim.to_dict() for parsed_claim in claims]
    assert plain[0] == {**PRECISE_CLAIM, "margin": 0.003}
    assert "baseline_metric" not in plain[1]
    assert parsed(plain, modes=("precise_bn",)) == (claims, [])
    config = load_config(config_data([claim(baseline="bn", baseline_metric="epochs_to_0.98")]))
    assert config.to_dict()["claims"][0]["baseline_metric"] == "epochs_to_0.98"
    assert load_config(config.to_dict()) == config


# ---- one exact line per problem


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"metric": "accuracy"}, f"claims[0].metric: expected one of {ALL_METRICS} (the per-trial figures of the "
         "trials table), received the string 'accuracy'."),
        ({"metric": "epochs_to_0.95"}, f"claims[0].metric: expected one of {ALL_METRICS} (the per-trial figures of "
         "the trials table), received the string 'epochs_to_0.95'."),
        ({"variant": "bn_x"}, "claims[0].variant: expected a variant label of this config: one of no_bn, bn, "
         "received the string 'bn_x'."),
        ({"baseline": "bn_before_activation"}, "claims[0].baseline: expected a variant label of this config: one of "
         "no_bn, bn, received the string 'bn_before_activation'."),
        ({"baseline": "bn"}, f"claims[0].baseline: expected {SAME_VARIANT}, received the string 'bn'."),
        ({"baseline": "bn", "baseline_metric": "epochs_to_0.97"}, f"claims[0].baseline: expected {SAME_VARIANT}, "
         "received the string 'bn'."),  # the claim's own metric is no other metric
        ({"baseline_metric": "test_accuracy"}, "claims[0].baseline_metric: expected a metric in the units of "
         "claims[0].metric (epochs_to_0.97: epochs): one of epochs_to_0.97, epochs_to_0.98, received the string "
         "'test_accuracy'."),
        ({"metric": "test_accuracy", "baseline_metric": "final_accuracy_gap"}, "claims[0].baseline_metric: expected a "
         f"metric in the units of claims[0].metric (test_accuracy: accuracy): one of {ACCURACIES}, received the "
         "string 'final_accuracy_gap'."),
        ({"metric": "steady_epoch_seconds", "baseline_metric": "epochs_to_0.98"}, "claims[0].baseline_metric: "
         "expected a metric in the units of claims[0].metric (steady_epoch_seconds: seconds): one of "
         "steady_epoch_seconds, first_epoch_seconds, total_train_seconds, seconds_to_0.97, seconds_to_0.98, received "
         "the string 'epochs_to_0.98'."),
        ({"expect": "faster"}, "claims[0].expect: expected one of higher, lower, equivalent (the metric's own "
         "direction: for epochs_to_T, lower means faster), received the string 'faster'."),
        ({"expect": "equivalent"}, "claims[0].margin: expected a margin: set claims[0].margin or "
         "analysis.equivalence_margin (expect: equivalent needs the largest difference of no practical importance, "
         "in the metric's units); neither is set."),
        ({"margin": 0}, "claims[0].margin: expected a positive number: the largest difference of no practical "
         "importance, in the metric's units, received 0."),
        ({"margin": -0.01}, "claims[0].margin: expected a positive number: the largest difference of no practical "
         "importance, in the metric's units, received -0.01."),
        ({"margin": "small"}, "claims[0].margin: expected a positive number: the largest difference of no practical "
         "importance, in the metric's units, received the string 'small'."),
        ({"at": {LR: 0.1}}, "claims[0].at: expected no at (this config has no grid: each variant has one set of "
         "trials to compare), received a mapping."),
        ({"statement": None}, "claims[0].statement: expected a non-empty string: the claim in words; the key is "
         "missing."),
        ({"source": " "}, "claims[0].source: expected a non-empty string: where the claim comes from, e.g. 'Ioffe & "
         "Szegedy 2015, sec. 4.1, Fig. 1(a)', received the string ' '."),
        ({"id": ""}, "claims[0].id: expected a non-empty string naming the claim in tables, received the string ''."),
        ({"colour": "red"}, f"claims[0].colour: expected no such key; allowed here: {CLAIM_KEYS}, received an "
         "unknown key."),
        ({"test": "wilcoxon"}, "claims[0].test: expected one of t (paired t-test on the mean difference) or sign "
         "(exact sign test on the median difference, for outcomes that split), received the string 'wilcoxon'."),
    ],
)
def test_each_bad_claim_value_gets_its_own_line(changes, message):
    assert problems(config_data([claim(**changes)])) == [f"<config>: {message}"]


@pytest.mark.parametrize(
    "at, messages",
    [
        (None, [f"claims[0].at: expected a mapping with a value for every grid key ({LR}: one of 0.01, 0.1, 1.0); "
                "the key is missing."]),
        ({}, [f"claims[0].at.{LR}: expected one of the grid's values 0.01, 0.1, 1.0; the key is missing."]),
        ({LR: 0.5}, [f"claims[0].at.{LR}: expected one of the grid's values 0.01, 0.1, 1.0, received 0.5."]),
        ({LR: 0.1, "training.batch_size": 60},
         [f"claims[0].at.training.batch_size: expected no such key; allowed here: {LR}, received an unknown key."]),
        ([0.1], [f"claims[0].at: expected a mapping with a value for every grid key ({LR}: one of 0.01, 0.1, 1.0), "
                 "received a list."]),
    ],
)
def test_grid_claims_need_a_grid_point(at, messages):
    assert problems(config_data([claim(at=at)], base=GRID)) == [f"<config>: {m}" for m in messages]


def test_every_grid_key_is_named_with_its_values():
    base = {**GRID, "grid": {LR: [0.1, 1.0], "training.batch_size": [30, 60]}}
    assert problems(config_data([claim(at={LR: 1.0})], base=base)) == [
        "<config>: claims[0].at.training.batch_size: expected one of the grid's values 30, 60; the key is missing."]


def test_a_number_does_not_name_a_boolean_grid_value():
    base = {**GRID, "grid": {"training.jit_compile": [True, False]}}
    assert problems(config_data([claim(at={"training.jit_compile": 1})], base=base)) == [
        "<config>: claims[0].at.training.jit_compile: expected one of the grid's values true, false, received 1."]
    config = load_config(config_data([claim(at={"training.jit_compile": False})], base=base))
    assert config.claims[0].labels() == ("bn-jit_compilefalse", "no_bn-jit_compilefalse")


def test_grid_labels_are_not_variant_labels():
    assert problems(config_data([claim(variant="bn-learning_rate1", at={LR: 1.0})], base=GRID)) == [
        "<config>: claims[0].variant: expected a variant label of this config: one of no_bn, bn; grid values go in "
        "at, not in the label, received the string 'bn-learning_rate1'."]


def test_duplicate_ids_name_the_first_holder():
    claims = [claim(id="speed"), claim(id="speed"), CLAIM, claim(id="claim3")]
    assert problems(config_data(claims)) == [
        "<config>: claims[1].id: expected an id no other claim has (claims[0] has it; a claim without an id is "
        "claimN, N its position from 1), received the string 'speed'.",
        "<config>: claims[3].id: expected an id no other claim has (claims[2] has it; a claim without an id is "
        "claimN, N its position from 1), received the string 'claim3'.",
    ]


@pytest.mark.parametrize(
    "claims, message",
    [
        ({"first": CLAIM}, f"claims: expected a list of claims, each a mapping with keys {CLAIM_KEYS}, received a "
         "mapping."),
        (["bn is better"], f"claims[0]: expected a mapping with keys {CLAIM_KEYS}, received the string "
         "'bn is better'."),
    ],
)
def test_claims_must_be_a_list_of_mappings(claims, message):
    assert problems(config_data(claims)) == [f"<config>: {message}"]


def test_all_problems_of_all_claims_are_reported():
    lines = problems(config_data([claim(metric="x", expect="up"), claim(variant="nope")]))
    assert [line.split(": ")[1] for line in lines] == ["claims[0].metric", "claims[0].expect", "claims[1].variant"]


@pytest.mark.parametrize(
    "section, message",
    [
        ({"alpha": 0.5}, "analysis.alpha: expected a number in (0, 0.5): the level of every test, received 0.5."),
        ({"alpha": 0}, "analysis.alpha: expected a number in (0, 0.5): the level of every test, received 0."),
        ({"confidence": 1}, "analysis.confidence: expected a number in (0, 1): the level of every interval, "
         "received 1."),
        ({"bootstrap_resamples": 99}, "analysis.bootstrap_resamples: expected an integer of at least 100 (fewer "
         "leave the interval's ends noisy), received 99."),
        ({"bootstrap_resamples": 1000.0}, "analysis.bootstrap_resamples: expected an integer of at least 100 (fewer "
         "leave the interval's ends noisy), received 1000.0."),
        ({"equivalence_margin": 0}, "analysis.equivalence_margin: expected null or a positive number: the largest "
         "difference of no practical importance, in the metric's units (e.g. 0.003 for 0.3 points of accuracy), "
         "received 0."),
        ({"level": 0.05}, "analysis.level: expected no such key; allowed here: equivalence_margin, alpha, confidence, "
         "bootstrap_resamples, received an unknown key."),
        ([0.05], "analysis: expected a mapping with keys equivalence_margin, alpha, confidence, bootstrap_resamples, "
         "received a list."),
    ],
)
def test_each_bad_analysis_value_gets_its_own_line(section, message):
    assert problems(config_data(analysis=section)) == [f"<config>: {message}"]


def test_problems_name_the_file(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(config_data([claim(expect="better")])), encoding="utf-8")
    assert problems(path) == [f"{path}: claims[0].expect: expected one of higher, lower, equivalent (the metric's "
                              "own direction: for epochs_to_T, lower means faster), received the string 'better'."]


# ---- to_dict


def test_round_trip_with_claims_and_analysis(tmp_path):
    claims = [claim(expect="equivalent", metric="test_accuracy"), claim(id="speed", margin=0.5)]
    data = config_data(claims, analysis={"equivalence_margin": 0.003, "alpha": 0.01})
    config = load_config(data)
    plain = config.to_dict()
    assert plain["analysis"] == {"equivalence_margin": 0.003, "alpha": 0.01, "confidence": 0.95,
                                 "bootstrap_resamples": 2000}
    assert plain["claims"] == [{**claims[0], "id": "claim1", "margin": 0.003}, {**claims[1], "margin": 0.5}]
    assert load_config(plain) == config
    path = tmp_path / "config.yaml"  # as a run folder stores it
    path.write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
    assert load_config(path) == config


def test_round_trip_of_a_grid_claim():
    config = load_config(config_data([claim(at={LR: 0.1})], base=GRID))
    plain = config.to_dict()
    assert plain["claims"][0]["at"] == {LR: 0.1}
    assert "margin" not in plain["claims"][0]
    assert load_config(plain) == config


def test_to_dict_leaves_out_default_sections():
    plain = load_config(config_data([], analysis={})).to_dict()
    assert "claims" not in plain and "analysis" not in plain
    assert plain == load_config(config_data()).to_dict()


@pytest.mark.parametrize("name", list_configs())
def test_shipped_configs_round_trip_with_their_claims(name):
    config = load_config(name)
    plain = config.to_dict()
    assert ("claims" in plain) == bool(config.claims)
    assert load_config(plain) == config


def test_the_analysis_margin_is_the_default_of_accuracy_claims_only():
    claims = load_config("placement").claims
    margins = {claim.id: claim.margin for claim in claims}
    assert margins == {"before_sooner": None, "after_sooner": None, "before_more_accurate": 0.003,
                       "before_beats_after": 0.003}


def test_the_test_defaults_to_t_and_sign_round_trips():
    (plain,) = load_config(config_data([claim()])).claims
    assert plain.test == "t" and "test" not in plain.to_dict()
    config = load_config(config_data([claim(test="sign")]))
    assert config.claims[0].test == "sign" and config.claims[0].to_dict()["test"] == "sign"
    assert load_config(config.to_dict()) == config
