"""Notebooks run top to bottom (each on a shared run of its study) so that a broken notebook fails CI.

Each notebook's first code cell finds its run folder (the environment variable BNLAB_RUN_DIR, else the
repository's runs/<config>, found from the notebook's folder) and trains the config named by
BNLAB_CONFIG into it when it holds no run yet.
"""

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

# Per notebook: the config its first cell trains, cut to one cheap trial: its label, and the changes to the YAML
# (top-level keys replaced, `training` keys merged; every cut trains one seed for one epoch)
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_trains_its_config_into_an_empty_run_folder(path, tmp_path, monkeypatch):
    # only the first code cell, on a one-trial, one-epoch cut of the notebook's own config
    assert path.stem in ONE_TRIAL, f"add {path.stem} to ONE_TRIAL: the config its first cell trains, cut to one trial"
    name, label, changes = ONE_TRIAL[path.stem]
    config = yaml.safe_load(resolve_config_path(name).read_text())
    config.update({key: value for key, value in changes.items() if key != "training"}, name="one-trial", seeds=1)
    config["training"].update(changes.get("training", {}), epochs=1)
    (tmp_path / "one-trial.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("BNLAB_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "one-trial.yaml"))
    notebook = nbformat.read(path, as_version=4)
    first_code = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code")
    notebook.cells = notebook.cells[:first_code + 1]
    outputs = execute(notebook, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    assert "one-trial: 1 trials, 1 seed(s), 1 epochs; backend tensorflow" in printed(outputs)
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert trials[["variant", "seed", "status"]].values.tolist() == [[label, 0, "complete"]]
