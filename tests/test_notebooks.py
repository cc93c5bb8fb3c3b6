"""Notebooks run top to bottom (each on a shared run of its study, or on a cut of its study that its first cell
trains) so that a broken notebook fails CI.

Each notebook's first code cell finds its run folder (the environment variable BNLAB_RUN_DIR, else the
repository's runs/<config>, found from the notebook's folder) and trains the config named by
BNLAB_CONFIG into it when it holds no run yet. A notebook that reads a second study (mechanisms) finds its
folder and config the same way through BNLAB_RUN_DIR_2 and BNLAB_CONFIG_2.
"""

import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient

from bnlab.config import resolve_config_path

NOTEBOOK_FOLDER = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("*.ipynb"))

_HOLDOUT = {"validation": "holdout", "validation_size": 256, "train_subset": 512}
_EVERY_8_STEPS = {"examples": 64, "every_n_steps": 8}  # a probe on 64 images every 8 steps and at step 0
_FEW_RESAMPLES = 100  # analysis.bootstrap_resamples: the fewest allowed; the claims tables of one seed need no more
# Per notebook: the config its first cell trains, cut to one cheap trial: its label, and the changes to the YAML
# (top-level keys replaced, `training` keys merged; every cut trains one seed for one epoch, or, for a config
# in step mode, for the steps its `training` changes give)
ONE_TRIAL = {
    "compare_variants": ("tiny", "no_bn", {"variants": ["no_bn"]}),
    "small_batch": ("small_batch", "bn_g16", {
        "variants": [{"name": "ghost_bn_before_activation", "label": "bn_g16",
                      "overrides": {"virtual_batch_size": 16}}],
        "claims": [],  # the study's claims name variants the cut leaves out
        "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 256},
        "training": {"batch_size": 32}}),
    "population": ("input_bn", "bn_input", {
        "variants": ["bn_input"],
        "claims": [],  # the study's claims name variants the cut leaves out
        "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 256}}),
}
# Notebooks whose whole-notebook test below trains its cut into the empty runs/<config> and checks the
# progress lines: the one-trial test of the first cell would train the same again
TRAINS_ITS_CUT = ("ioffe2015_fig1", "lr_sweep", "mechanisms")
# The studies of the notebooks that train their own cut in their first cell (changes as in ONE_TRIAL), each
# keeping claims on what the cut trains. init_gradients: no BN and BN at four hidden layers of 64 (two inner
# kernels for the growth fit), 1 seed, 4 steps of 128; santurkar2018: its three variants at 784-32-32-10,
# 1 seed, 8 steps of 32 with the probes at steps 0 and 8.
INIT_GRADIENTS_CUT = {
    "grid": {"model.hidden_units": [[64, 64, 64, 64]]}, "seeds": 1, "dataset": _HOLDOUT,
    "probes": {"init_gradients": {"examples": 128}}, "evaluation": {"precise_bn_examples": 256},
    "analysis": {"bootstrap_resamples": _FEW_RESAMPLES},
    "claims": [{"id": "bn_explodes", "statement": "BN's squared gradient norm grows faster toward the input",
                "source": "Yang et al. 2019", "metric": "init_gradient_growth", "variant": "bn", "baseline": "no_bn",
                "expect": "higher", "at": {"model.hidden_units": [64, 64, 64, 64]}}],
    "training": {"steps": 4, "eval_every_steps": 4, "steps_per_execution": 4, "batch_size": 128},
}
SANTURKAR_CUT = {
    "grid": {"model.hidden_units": [[32, 32]]}, "seeds": 1,
    "dataset": {"validation": "holdout", "validation_size": 256, "train_subset": 256},
    "analysis": {"equivalence_margin": 0.003, "bootstrap_resamples": _FEW_RESAMPLES},
    "probes": {"landscape": _EVERY_8_STEPS, "covariate_shift": _EVERY_8_STEPS},
    "claims": [{"id": "bn_smoother", "statement": "BN's beta-smoothness is lower", "source": "Santurkar et al. 2018",
                "metric": "mean_beta_smoothness", "variant": "bn", "baseline": "no_bn", "expect": "lower",
                "at": {"model.hidden_units": [32, 32]}}],
    "training": {"epochs": 1, "batch_size": 32, "steps_per_execution": 8, "jit_compile": False},
}
# ioffe2015_fig1: both networks, 1 seed, 300 steps of 60 on 3,000 images, evaluated every 100 steps: long enough
# for BN's moving averages to settle, so that the BN network's test accuracy is already far above chance
IOFFE_CUT = {
    "seeds": 1, "dataset": {"validation": "test", "binarize": True, "train_subset": 3000},
    "analysis": {"bootstrap_resamples": _FEW_RESAMPLES},
    "training": {"steps": 300, "eval_every_steps": 100, "steps_per_execution": 50, "jit_compile": False},
}
# lr_sweep: no BN and BN before the activation at learning rates 0.1 and 1, 1 seed, 1 epoch of 16 steps,
# targets a 16-step network reaches, and the claim at learning rate 1 on the variants the cut keeps
LR_SWEEP_CUT = {
    "variants": ["no_bn", "bn_before_activation"], "grid": {"training.optimizer.learning_rate": [0.1, 1.0]},
    "seeds": 1, "targets": [0.5, 0.7], "dataset": _HOLDOUT, "analysis": {"bootstrap_resamples": _FEW_RESAMPLES},
    "claims": [{"id": "before_trains_at_lr1", "statement": "at lr 1, BN before the activation ends higher",
                "source": "Santurkar et al. 2018", "metric": "final_val_accuracy", "variant": "bn_before_activation",
                "baseline": "no_bn", "expect": "higher", "at": {"training.optimizer.learning_rate": 1.0}}],
    "training": {"epochs": 1, "jit_compile": False},
}


def write_cut(path, config_name, changes, **replaced) -> dict:
    """configs/<config_name>.yaml with `changes` (top-level keys replaced, `training` keys merged) and `replaced`
    (top-level keys), written to path; returns the cut config."""
    config = yaml.safe_load(resolve_config_path(config_name).read_text())
    config.update({key: value for key, value in changes.items() if key != "training"}, **replaced)
    config["training"].update(changes.get("training", {}))
    path.write_text(yaml.safe_dump(config))
    return config


def execute(notebook, folder):
    """Run a notebook's cells in a kernel started in `folder`, as Jupyter starts it in the notebook's folder."""
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def printed(outputs) -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")


def shown(cell) -> str:
    """The plain text of what a cell printed and displayed."""
    return printed(cell.outputs) + "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def rows_of(table: str, *keys: str) -> list[list[float]]:
    """The numbers after `keys` on each line of a shown DataFrame that holds them side by side, up to the first
    field that is not a number (pandas trims and pads decimals per column, so values are compared as numbers)."""
    rows = []
    for fields in (line.split() for line in table.splitlines()):
        starts = [i for i in range(len(fields) - len(keys) + 1) if fields[i:i + len(keys)] == list(keys)]
        if starts:
            numbers = []
            for field in fields[starts[0] + len(keys):]:
                try:
                    numbers.append(float(field))
                except ValueError:
                    break
            rows.append(numbers)
    return rows


def in_a_repository(path, tmp_path):
    """A copy of the notebook in a repository laid out as the real one under tmp_path, and its repository folder."""
    repository = tmp_path / "repository"
    (repository / "notebooks").mkdir(parents=True)
    notebook = nbformat.read(path, as_version=4)
    nbformat.write(notebook, repository / "notebooks" / path.name)
    return notebook, repository


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_compare_variants_runs_on_a_tiny_run(tmp_path, copy_tiny_run, monkeypatch):
    # the shared run where `bnlab run quickstart` would write;
    # nothing tells the notebook where the run is: it finds it from its own folder
    notebook, repository = in_a_repository(NOTEBOOK_FOLDER / "compare_variants.ipynb", tmp_path)
    run_dir = copy_tiny_run(repository / "runs" / "quickstart")
    monkeypatch.delenv("BNLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "no-such-config.yaml"))  # training here would be an error
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    assert f"Run folder: {run_dir}\ntiny: 4 trials, 2 seed(s), 2 epochs; backend tensorflow\n" in printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # one per figure
    assert (run_dir / "report.md").is_file()


def test_small_batch_runs_on_the_small_batch_run(tmp_path, small_batch_run, monkeypatch):
    # the shared cut of the study where `bnlab run small_batch` would write, found from the notebook's folder
    notebook, repository = in_a_repository(NOTEBOOK_FOLDER / "small_batch.ipynb", tmp_path)
    run_dir = Path(shutil.copytree(small_batch_run, repository / "runs" / "small_batch"))
    monkeypatch.delenv("BNLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "no-such-config.yaml"))  # training here would be an error
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    summary = "small_batch: 8 trials, 2 seed(s), 1 epochs; backend tensorflow"
    assert f"Run folder: {run_dir}\n{summary}\n" in printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # test error against g, validation accuracy per epoch
    cells = {cell.id: cell for cell in notebook.cells}
    normalizers = shown(cells["normalizers"])
    assert all(name in normalizers for name in ("ghost", "renorm", "group", "Wu & He 2018", "virtual_batch_size"))
    table = shown(cells["small-batch-table"])
    assert all(label in table for label in ("bn_g2", "bn_g16", "renorm_g4", "layer_norm"))
    claims = shown(cells["claims"])
    assert "bn_fails_at_g2" in claims and "bn_g16" in claims


def test_population_runs_on_the_population_run(tmp_path, population_run, monkeypatch):
    # the shared run with PreciseBN and batch-statistics evaluation, where `bnlab run input_bn` would write
    notebook, repository = in_a_repository(NOTEBOOK_FOLDER / "population.ipynb", tmp_path)
    run_dir = Path(shutil.copytree(population_run, repository / "runs" / "input_bn"))
    monkeypatch.delenv("BNLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "no-such-config.yaml"))  # training here would be an error
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    summary = "tiny: 4 trials, 2 seed(s), 2 epochs; backend tensorflow"
    assert f"Run folder: {run_dir}\n{summary}\n" in printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # validation accuracy per epoch under each evaluation mode
    cells = {cell.id: cell for cell in notebook.cells}
    table = shown(cells["mode-table"])
    assert all(name in table for name in ("bn_before_activation", "no_bn", "precise_bn_minus_moving",
                                          "batch_statistics_minus_moving"))
    discrepancy = shown(cells["discrepancy"])
    assert "hidden_1_bn" in discrepancy and "hidden_2_bn" in discrepancy
    assert "no_bn" not in discrepancy  # no BN layer, no moving statistics to compare
    assert "claim_verdict" in shown(cells["claims"])  # tiny declares no claims: an empty table with its columns
    demonstration = printed(cells["demonstration"].outputs)
    assert "moving variance = 3.5000; numpy variance: ddof=0 3.5000, ddof=1 4.6667\n" in demonstration
    assert "moving variance / ddof=1 variance = 0.75 = (B - 1)/B for B = 4\n" in demonstration
    assert "mean = per-pixel mean: True; variance = per-pixel ddof=1 variance: True\n" in demonstration


@pytest.mark.slow
def test_mechanisms_trains_both_studies_and_shows_them(tmp_path, monkeypatch):
    # nothing names the run folders: the first cell trains each cut into the repository's runs/<config>
    notebook, repository = in_a_repository(NOTEBOOK_FOLDER / "mechanisms.ipynb", tmp_path)
    for suffix, name, changes in (("", "init_gradients", INIT_GRADIENTS_CUT), ("_2", "santurkar2018", SANTURKAR_CUT)):
        write_cut(tmp_path / f"{name}.yaml", name, changes)
        monkeypatch.delenv(f"BNLAB_RUN_DIR{suffix}", raising=False)
        monkeypatch.setenv(f"BNLAB_CONFIG{suffix}", str(tmp_path / f"{name}.yaml"))
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    cells = {cell.id: cell for cell in notebook.cells}
    runs = repository / "runs"
    summaries = printed(cells["run-folders"].outputs)
    assert f"Run folder: {runs / 'init_gradients'}\ninit_gradients: 2 trials, 1 seed(s), 4 steps; backend " in summaries
    assert f"Run folder: {runs / 'santurkar2018'}\nsanturkar2018: 3 trials, 1 seed(s), 1 epochs; backend " in summaries
    assert "\nbn-hidden_units64x4 seed 0: complete" in summaries  # the progress display's line per trial
    assert "\nnoisy_bn-hidden_units32-32 seed 0: complete" in summaries
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # the demonstration, gradients at init, accuracy, landscape, covariate shift
    # 12 hidden layers of 256 at He init, seed 0: the gradient grows toward the input with BN, stays level without
    found = re.search(r"no BN (\d\.\d\d), BN before ReLU (\d\.\d\d); Yang et al\. 2019: pi/\(pi-1\) = 1\.47",
                      printed(cells["demonstration"].outputs))
    assert found, printed(cells["demonstration"].outputs)
    assert 0.8 < float(found[1]) < 1.1 and 1.2 < float(found[2]) < 1.6
    growth = pd.read_csv(runs / "init_gradients" / "trials.csv").set_index("variant")["init_gradient_growth"]
    table = shown(cells["growth-table"])
    assert "yang_in_interval" in table
    for variant, value in growth.items():  # five kernels, one seed, the trial's own growth
        (row,) = rows_of(table, variant)
        assert row[:2] == [5, 1] and row[2] == pytest.approx(value, abs=1e-6), (variant, table)
    figures = shown(cells["accuracy-table"])
    assert all(f"{variant}-hidden_units32-32" in figures for variant in ("no_bn", "bn", "noisy_bn"))
    assert "mean_beta_smoothness" in figures and "mean_ics_cosine" in figures
    assert "Runs with the kernel_norms probe: none\n" == printed(cells["kernel-norms"].outputs)
    claims = shown(cells["claims"])
    assert "bn_explodes" in claims and "bn_smoother" in claims and claims.count("inconclusive") == 2  # one seed


def train_cut_in_notebook(name: str, cut: dict, tmp_path, monkeypatch):
    """Runs notebooks/NAME.ipynb in a copy of the repository with no run yet, so its first cell trains the cut of
    config NAME into runs/NAME; returns the executed notebook, its outputs and the run folder."""
    notebook, repository = in_a_repository(NOTEBOOK_FOLDER / f"{name}.ipynb", tmp_path)
    write_cut(tmp_path / f"{name}.yaml", name, cut)
    monkeypatch.delenv("BNLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / f"{name}.yaml"))
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    return notebook, outputs, repository / "runs" / name


@pytest.mark.slow
def test_ioffe2015_fig1_trains_its_cut_and_shows_figure_1(tmp_path, monkeypatch):
    notebook, outputs, run_dir = train_cut_in_notebook("ioffe2015_fig1", IOFFE_CUT, tmp_path, monkeypatch)
    summary = "ioffe2015_fig1: 2 trials, 1 seed(s), 300 steps; backend tensorflow"
    assert f"Run folder: {run_dir}\n{summary}\n" in printed(outputs)
    assert "with_bn seed 0: complete, best val_acc" in printed(outputs)  # the progress display's line per trial
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # (a) accuracy against steps, (b, c) percentiles
    cells = {cell.id: cell for cell in notebook.cells}
    epochs = pd.read_csv(run_dir / "epochs.csv")
    last = epochs[epochs["step"] == 300].set_index("variant")["val_accuracy"]
    assert last["with_bn"] > 0.5  # BN's network learns within 300 steps (0.84 when written)
    checkpoints = shown(cells["checkpoints"])
    assert rows_of(checkpoints, "1.0", "300") == [pytest.approx([last["without_bn"], last["with_bn"]], abs=1e-4)]
    targets = shown(cells["targets"])
    reached = pd.read_csv(run_dir / "targets.csv").groupby(["variant", "target"])["reached"].sum()
    for (variant, target), count in reached.items():  # seeds, and how many reached the target
        assert rows_of(targets, variant, f"{target:g}")[0][:2] == [1, count], (variant, target, targets)
    assert "from step 100" in shown(cells["drift-table"])
    verdict = printed(cells["drift-verdict"].outputs)
    assert re.match(r"Claim 2 \(a stable input distribution with BN, a drifting one without\) \*\*(holds|holds in part|"
                    r"does not hold)\*\* here \(with_bn against without_bn", verdict), verdict
    claims = shown(cells["claims"])
    assert "higher_accuracy" in claims and "sooner" in claims and claims.count("inconclusive") == 2  # one seed


@pytest.mark.slow
def test_lr_sweep_trains_its_cut_and_shows_the_sweep(tmp_path, monkeypatch):
    notebook, outputs, run_dir = train_cut_in_notebook("lr_sweep", LR_SWEEP_CUT, tmp_path, monkeypatch)
    summary = "lr_sweep: 4 trials, 1 seed(s), 1 epochs; backend tensorflow"
    assert f"Run folder: {run_dir}\n{summary}\n" in printed(outputs)
    assert "bn_before_activation-learning_rate1 seed 0: complete, best val_acc" in printed(outputs)  # progress
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the sweep, the curves at the largest learning rate
    cells = {cell.id: cell for cell in notebook.cells}
    trials = pd.read_csv(run_dir / "trials.csv")
    table = shown(cells["sweep-table"])
    for variant, rows in trials.groupby("base_variant"):  # learning rate, seeds, diverged, final accuracy
        expected = [[rate, 1, int(status == "diverged"), accuracy if status != "diverged" else float("nan")]
                    for rate, status, accuracy in rows[["learning_rate", "status", "final_val_accuracy"]].values]
        shown_rows = [row[:4] for row in rows_of(table, variant)]
        assert shown_rows == [pytest.approx(row, abs=1e-6, nan_ok=True) for row in expected], (variant, table)
    verdict = printed(cells["verdict"].outputs)
    assert re.match(r"bn_before_activation: the claim \*\*(holds|holds in part|does not hold)\*\*\. Largest usable "
                    r"learning rate ", verdict) and "no_bn:" not in verdict, verdict
    curves = "learning rate 1: no_bn-learning_rate1, bn_before_activation-learning_rate1\n"
    assert printed(cells["curves"].outputs) == curves
    claims = shown(cells["claims"])
    assert "before_trains_at_lr1" in claims and "inconclusive" in claims  # one seed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_a_test_that_trains_it(path):
    assert path.stem in ONE_TRIAL or path.stem in TRAINS_ITS_CUT, (
        f"add {path.stem} to ONE_TRIAL (the config its first cell trains, cut to one trial) or give it a test "
        "that trains its cut and list it in TRAINS_ITS_CUT")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem in ONE_TRIAL], ids=lambda p: p.stem)
def test_notebook_trains_its_config_into_an_empty_run_folder(path, tmp_path, monkeypatch):
    # only the first code cell, on a one-trial, one-epoch (or few-step) cut of the notebook's own config
    runs = {"": ONE_TRIAL[path.stem]}  # environment variable suffix -> (config, label, changes)
    lengths = {}
    for suffix, (name, label, changes) in runs.items():
        step_mode = "steps" in yaml.safe_load(resolve_config_path(name).read_text())["training"]
        training = changes.get("training", {}) if step_mode else {**changes.get("training", {}), "epochs": 1}
        config = write_cut(tmp_path / f"one-trial{suffix}.yaml", name, {**changes, "training": training},
                           name="one-trial", seeds=1)
        lengths[suffix] = f"{config['training']['steps']} steps" if step_mode else "1 epochs"
        monkeypatch.setenv(f"BNLAB_RUN_DIR{suffix}", str(tmp_path / f"run{suffix}"))
        monkeypatch.setenv(f"BNLAB_CONFIG{suffix}", str(tmp_path / f"one-trial{suffix}.yaml"))
    notebook = nbformat.read(path, as_version=4)
    first_code = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    notebook.cells = notebook.cells[:first_code + 1]
    outputs = execute(notebook, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    for suffix, (name, label, changes) in runs.items():
        summary = f"Run folder: {tmp_path / f'run{suffix}'}\none-trial: 1 trials, 1 seed(s), {lengths[suffix]}; "
        assert summary + "backend tensorflow\n" in printed(outputs)
        trials = pd.read_csv(tmp_path / f"run{suffix}" / "trials.csv")
        assert trials[["variant", "seed", "status"]].values.tolist() == [[label, 0, "complete"]]
        assert f"{label} seed 0: complete, best val_acc" in printed(outputs)  # progress while it trains
