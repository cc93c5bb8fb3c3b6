"""A newcomer's first commands: --version, KEY=VALUE overrides, `run --dry-run`, `configs --show`.

Real subprocesses, as a user runs them; none of them trains or starts Keras, so each costs a
Python start.
"""

import subprocess
import sys

import pytest
import yaml

import bnlab
from bnlab.config import list_configs, resolve_config_path

MALFORMED = ("bnlab: command line: expected KEY=VALUE after the config name, a dotted config key and a value "
             "(e.g. training.optimizer.learning_rate=0.1), received {item!r}.")
# `bnlab` as `python -m bnlab` runs it, then which Keras backends the process imported, on stderr's last line
WITH_LOADED_MODULES = (
    "import sys; from bnlab.cli import main; code = main(sys.argv[1:]); "
    "print('loaded:', *[m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules], file=sys.stderr); "
    "sys.exit(code)"
)


def bnlab_command(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bnlab", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def dry_run(*args, cwd):
    """`bnlab run ... --dry-run` -> (resolved config, trials line, modules loaded, process)."""
    done = subprocess.run([sys.executable, "-c", WITH_LOADED_MODULES, "run", *args, "--dry-run"],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert done.returncode == 0, done.stderr
    *config_lines, trials_line = done.stdout.splitlines()
    marker, *loaded = done.stderr.splitlines()[-1].split()
    assert marker == "loaded:", done.stderr
    return yaml.safe_load("\n".join(config_lines)), trials_line, loaded, done


def test_version_prints_the_package_version():
    result = bnlab_command("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bnlab {bnlab.__version__}\n"


def test_overrides_change_the_resolved_config_of_a_dry_run(tmp_path):
    out = tmp_path / "tiny-run"
    config, trials, loaded, done = dry_run(
        "tiny", "training.optimizer.learning_rate=0.1", "seeds=3", "evaluation.modes=[precise_bn]",
        "--out", str(out), cwd=tmp_path)
    assert config["training"]["optimizer"] == {"name": "sgd", "learning_rate": 0.1}
    assert "    learning_rate: 0.1\n" in done.stdout
    assert config["seeds"] == [0, 1, 2]
    assert config["evaluation"]["modes"] == ["precise_bn"]
    assert config["output_dir"] == str(out)
    assert config["training"]["epochs"] == 2  # what no override touches stays the file's
    assert trials == f"12 trials (4 variants x 3 seeds), output folder {out}"
    # the printed config is one `bnlab run` accepts back
    assert bnlab.load_config(config).to_dict() == config
    assert loaded == [], "a dry run must not start Keras"
    assert list(tmp_path.iterdir()) == [], "a dry run must write nothing"


def test_overrides_after_options_and_the_trials_line_of_a_grid(tmp_path):
    config, trials, _, _ = dry_run("tiny", "--seeds", "1", "--variants", "no_bn", "training.epochs=5", cwd=tmp_path)
    assert config["training"]["epochs"] == 5 and config["seeds"] == [0]
    assert [variant["label"] for variant in config["variants"]] == ["no_bn"]
    assert trials == "1 trial (1 variant x 1 seed), output folder runs/tiny"
    _, sweep, _, _ = dry_run("lr_sweep", cwd=tmp_path)
    assert sweep == "48 trials (4 variants x 2 seeds x 6 grid points), output folder runs/lr_sweep"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "arguments, line",
    [
        (["training.optimizer.learning_rate=abc"],
         "bnlab: command line: training.optimizer.learning_rate: expected a positive number, "
         "received the string 'abc'."),
        (["seeds=[0,"], "bnlab: command line: seeds: expected a YAML value (a number, true or false, a word, "
                        "[a, list] or {a: mapping}), received '[0,'."),
        (["--epochs", "3", "training.epochs=5"], "bnlab: command line: training.epochs: expected one value, "
                                                 "received 3 and 5."),
        (["learning_rate0.1"], MALFORMED.format(item="learning_rate0.1")),
        # a problem inside an overridden value names the command line too
        (["variants=[no_bn, {name: group_norm_before_activation, overrides: {groups: 7}}]"],
         "bnlab: command line: variants[1].overrides.groups: expected a number of groups that divides every "
         "normalized width (hidden_1 300, hidden_2 100): one of 1, 2, 4, 5, 10, 20, 25, 50, 100 (variants[1], "
         "group_norm_before_activation), received 7."),
        (["=0.1"], MALFORMED.format(item="=0.1")),
        (["training..epochs=3"], MALFORMED.format(item="training..epochs=3")),
    ],
)
def test_a_bad_override_is_one_command_line_error_and_creates_nothing(tmp_path, arguments, line):
    out = tmp_path / "should-not-exist"
    result = bnlab_command("run", "tiny", *arguments, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == line + "\n"
    assert not out.exists()


def test_configs_show_prints_the_file_verbatim(tmp_path):
    result = bnlab_command("configs", "--show", "tiny", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = resolve_config_path("tiny").read_text(encoding="utf-8")
    assert text.startswith("# tiny: ")  # the header comment comes along
    assert result.stdout == text
    listing = bnlab_command("configs", cwd=tmp_path)
    assert listing.stdout.split() == list_configs()


def test_configs_show_of_an_unknown_name_lists_the_names():
    result = bnlab_command("configs", "--show", "tinny")
    assert result.returncode == 2
    assert result.stderr == (f"bnlab: configs --show: expected a config name ({', '.join(list_configs())}), "
                             "received 'tinny'.\n")
    assert result.stdout == ""
