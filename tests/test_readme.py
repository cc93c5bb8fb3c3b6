"""The README's table of config keys names every key a config accepts: the keys are read from the errors
the config loader gives for an unknown key, so a key added to a section without a README row fails here."""

import re
import shlex
import subprocess
import sys
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


def tour_commands() -> list[list[str]]:
    """The `bnlab` commands of the README's five-minute tour, as argument lists (comments dropped)."""
    text = README.read_text().split("### A five-minute tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/bnlab ")]


def test_the_tours_quick_commands_run_as_written(tmp_path):
    # `run tiny` is tests/test_cli.py's end-to-end test; `run quickstart` and its report take 2 minutes
    quick = [args for args in tour_commands() if "--dry-run" in args or args[0] == "configs"]
    assert len(quick) == 2
    for args in quick:
        done = subprocess.run([sys.executable, "-m", "bnlab", *args], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert ("trials (" in done.stdout) if "--dry-run" in args else done.stdout.startswith("# small_batch:")
    assert ["run", "tiny"] in tour_commands() and ["report", "runs/quickstart"] in tour_commands()
    assert not list(tmp_path.iterdir())  # a dry run writes nothing
