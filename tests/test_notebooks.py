"""Notebooks run top to bottom (on the session's shared tiny run) so that a broken notebook fails CI.

Each notebook's first code cell finds its run folder (the environment variable BNLAB_RUN_DIR, else the
repository's runs/quickstart, found from the notebook's folder) and trains the config named by
BNLAB_CONFIG into it when it holds no run yet.
"""

from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient

from bnlab.config import resolve_config_path

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def execute(notebook, folder):
    """Run a notebook's cells in a kernel started in `folder`, as Jupyter starts it in the notebook's folder."""
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def printed(outputs) -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_a_tiny_run(path, tmp_path, copy_tiny_run, monkeypatch):
    # a repository laid out as the real one, with the shared run where `bnlab run quickstart` would write;
    # nothing tells the notebook where the run is: it finds it from its own folder
    repository = tmp_path / "repository"
    (repository / "notebooks").mkdir(parents=True)
    notebook = nbformat.read(path, as_version=4)
    nbformat.write(notebook, repository / "notebooks" / path.name)
    run_dir = copy_tiny_run(repository / "runs" / "quickstart")
    monkeypatch.delenv("BNLAB_RUN_DIR", raising=False)
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "no-such-config.yaml"))  # training here would be an error
    outputs = execute(notebook, repository / "notebooks")
    assert not [o for o in outputs if o.output_type == "error"]
    assert f"Run folder: {run_dir}\ntiny: 4 trials, 2 seed(s), 2 epochs; backend tensorflow\n" in printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # one per figure
    assert (run_dir / "report.md").is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_trains_its_config_into_an_empty_run_folder(path, tmp_path, monkeypatch):
    # only the first code cell, on a one-trial cut of the tiny config
    config = yaml.safe_load(resolve_config_path("tiny").read_text())
    config.update(name="one-trial", variants=["no_bn"], seeds=1)
    config["training"]["epochs"] = 1
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
    assert trials[["variant", "seed", "status"]].values.tolist() == [["no_bn", 0, "complete"]]
