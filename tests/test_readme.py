"""The README's table of config keys names every key a config accepts: the keys are read from the errors
the config loader gives for an unknown key, so a key added to a section without a README row fails here."""

import re
from pathlib import Path

import pytest
import yaml

import bnlab
from bnlab.config import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"
TINY = yaml.safe_load(bnlab.config.resolve_config_path("tiny").read_text())
CLAIM = {"id": "c", "statement": "s", "source": "t", "metric": "test_accuracy", "variant": "no_bn",
         "baseline": "bn_input", "expect": "higher"}
# section of the README table -> a config with an unknown key "zzz" in that section
UNKNOWN_KEY = {
    "top level": {**TINY, "zzz": 1},
    "variants": {**TINY, "variants": [{"name": "no_bn", "zzz": 1}]},
    "dataset": {**TINY, "dataset": {**TINY["dataset"], "zzz": 1}},
    "training": {**TINY, "training": {**TINY["training"], "zzz": 1}},
    "evaluation": {**TINY, "evaluation": {"zzz": 1}},
    "probes": {**TINY, "probes": {"landscape": {"zzz": 1}, "covariate_shift": {"zzz": 1}, "zzz": {}}},
    "activation_probe": {**TINY, "activation_probe": {"hidden_layer": 1, "zzz": 1}},
    "analysis": {**TINY, "analysis": {"zzz": 1}},
    "claims": {**TINY, "claims": [{**CLAIM, "zzz": 1}]},
    "tracking": {**TINY, "tracking": {"zzz": 1}},
    "executor": {**TINY, "executor": {"zzz": 1}},
}


def allowed_keys(data) -> set[str]:
    with pytest.raises(ConfigError) as caught:
        bnlab.load_config(data)
    lines = [line for line in caught.value.problems if "zzz: expected no such key" in line]
    assert lines, caught.value.problems
    return {key for line in lines for key in line.split("allowed here: ")[1].split(", received")[0].split(", ")}


def readme_row(section: str) -> str:
    label = section if section == "top level" else f"`{section}`"
    (row,) = [line for line in README.read_text().splitlines() if line.startswith(f"| {label} |")]
    return row


@pytest.mark.parametrize("section", list(UNKNOWN_KEY))
def test_the_readme_names_every_key_of_a_section(section):
    named = set(re.findall(r"`([a-z_]+)`", readme_row(section)))
    sections = {name for name in UNKNOWN_KEY if name != "top level"} | {"grid"}  # rows of their own
    missing = allowed_keys(UNKNOWN_KEY[section]) - named - (sections if section == "top level" else set())
    assert not missing, f"README's {section} row lacks {sorted(missing)}"
