"""A newcomer's first commands: --version, KEY=VALUE overrides, `run --dry-run`, `configs --show`,
`runs` on committed runs, `compare`, and the install hints.

Real subprocesses, as a user runs them; none of them trains or starts Keras, so each costs a
Python start (`compare` reads copies of the shared tiny run).
"""

import shutil
import subprocess
import sys
from pathlib import Path

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
    assert sweep == "120 trials (4 variants x 5 seeds x 6 grid points), output folder runs/lr_sweep"
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


def test_install_hints_name_a_checkout_or_a_wheel_never_an_index():
    from bnlab.common.extras import install_command

    assert install_command("mlflow") == ('pip install -e ".[mlflow]" from a bnlab checkout, '
                                         "or the extra 'mlflow' when installing a wheel")
    assert install_command(None, "numpy") == "pip install numpy"


def test_runs_counts_the_trials_of_committed_runs(tmp_path):
    docs = Path(__file__).resolve().parent.parent / "docs"
    for name in ("placement-run", "precise_bn-run"):
        shutil.copytree(docs / name, tmp_path / name)
    result = bnlab_command("runs", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[2].strip(): line.split("│")[5].strip()
            for line in result.stdout.splitlines() if line.count("│") == 6}
    assert rows == {"placement": "20/20", "precise_bn": "10/10"}


def test_compare_prints_and_writes_the_differences_between_runs(copy_tiny_run, tmp_path, tiny_results):
    first, second = copy_tiny_run(tmp_path / "tiny"), copy_tiny_run(tmp_path / "tiny-lr")
    out = tmp_path / "comparison"
    result = bnlab_command("compare", str(first), str(second), "--out", str(out))
    assert result.returncode == 0, result.stderr
    means = tiny_results.trials.groupby("variant")[["final_val_accuracy", "test_accuracy"]].agg(["mean", "std"])
    for label in ("no_bn", "bn_before_activation"):
        cells = [f"{means.loc[label, (figure, 'mean')]:.4f} ± {means.loc[label, (figure, 'std')]:.4f}"
                 for figure in ("final_val_accuracy", "test_accuracy")]
        for run in ("tiny", "tiny-lr"):
            assert f"| {run} | {label} | {cells[0]} | 2 | {cells[1]} | 2 |" in (out / "compare.md").read_text()
        assert f"| {label} | tiny-lr | tiny | test acc | +0.0000 [+0.0000, +0.0000] | 1 | paired by seed | 2 vs 2 |" \
            in (out / "compare.md").read_text()
    assert "paired by seed" in result.stdout and f"Comparison written: {out / 'compare.md'}" in result.stdout
    assert (out / "validation_accuracy.png").stat().st_size > 10_000


def test_compare_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = bnlab_command("compare", str(tmp_path), str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (f"bnlab: {tmp_path} is not a bnlab run folder: expected {tmp_path / 'config.yaml'}, "
                             "which `bnlab run` writes first.\n")
