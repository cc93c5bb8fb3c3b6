"""A newcomer's first contact with run folders: reading them without fcntl (Windows), the run-folder
lock, what metadata.json records, `list_runs` on committed runs, `load_runs` and the numbers of
`bnlab compare`.

Every test reads the shared tiny run (or a copy of it, or of a committed docs/*-run); none trains.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bnlab.analysis.run_comparison import PAIRED, WELCH, difference, run_differences, run_statistics
from bnlab.analysis.summary import summarize_variants
from bnlab.common.startup import START_UP_LINE, held_stderr
from bnlab.runs.folder import RunFolderError, RunLock
from bnlab.runs.lock import FolderInUseError, FolderLock
from bnlab.runs.results import list_runs, load_runs

DOCS = Path(__file__).resolve().parent.parent / "docs"
# without fcntl, as on Windows: every module that reads run folders must still import, and read one
WITHOUT_FCNTL = """
import importlib, pkgutil, sys, warnings
sys.modules["fcntl"] = None
warnings.simplefilter("ignore")  # filelock warns that only its soft lock is left on a Unix without fcntl
import bnlab.analysis, bnlab.runs.results
for module in pkgutil.iter_modules(bnlab.analysis.__path__):
    importlib.import_module(f"bnlab.analysis.{module.name}")
results = bnlab.runs.results.load_results(sys.argv[1])
print(len(results.trials), "fcntl" in sys.modules and sys.modules["fcntl"] is None)
"""


def test_run_folders_are_read_without_fcntl():
    done = subprocess.run([sys.executable, "-c", WITHOUT_FCNTL, str(DOCS / "placement-run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["20", "True"]


def test_a_second_lock_on_a_folder_is_refused_and_names_the_holder(tmp_path):
    with FolderLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
        with pytest.raises(FolderInUseError) as refused:
            FolderLock(tmp_path).__enter__()
        assert str(refused.value) == (f"{tmp_path} is in use by another bnlab process (pid {os.getpid()}). "
                                      "Wait for it to finish, or choose another folder with --out.")
        with pytest.raises(RunFolderError, match=f"in use by another bnlab process \\(pid {os.getpid()}\\)"):
            RunLock(tmp_path).__enter__()
        # a refused contender leaves the holder's id in place, for the next one
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    with RunLock(tmp_path):  # released: the next holder gets it
        pass


def test_the_run_lock_removes_a_killed_writers_temporary_files(tmp_path):
    (tmp_path / "trials" / "no_bn-seed0").mkdir(parents=True)
    stale = [tmp_path / ".epochs.csv.x1.tmp", tmp_path / "trials" / "no_bn-seed0" / ".trial.json.x2.tmp"]
    for path in stale:
        path.write_text("half written")
    with RunLock(tmp_path):
        assert not any(path.exists() for path in stale)


def test_metadata_records_the_accelerator_and_the_versions(tiny_run):
    import keras
    import scipy

    from bnlab.common.environment import accelerator

    metadata = json.loads((tiny_run / "metadata.json").read_text())
    assert metadata["numpy"] == np.__version__
    assert metadata["pandas"] == pd.__version__
    assert metadata["scipy"] == scipy.__version__
    assert metadata["keras"] == keras.__version__
    backend = keras.backend.backend()
    assert (metadata["backend"], metadata["backend_version"]) == (backend, __import__(backend).__version__)
    assert metadata["accelerator"] == accelerator(backend)  # "none" on a CPU machine, the GPU's name on one
    assert metadata["accelerator"] and not metadata["accelerator"].startswith("unknown")


def test_accelerator_of_a_backend_bnlab_cannot_ask_is_none():
    from bnlab.common.environment import accelerator

    assert accelerator("numpy") == "none"


CREATED_DEVICE = ("I0000 00:00:1796037858.199951   27993 gpu_device.cc:2022] Created device "
                  "/job:localhost/replica:0/task:0/device:GPU:0 with 139000 MB memory:  -> device: 0, "
                  "name: NVIDIA H200, pci bus id: 0000:00:05.0, compute capability: 9.0\n")
XLA_SERVICE = ("I0000 00:00:1796037858.199951   27993 service.cc:153] XLA service 0x556bfd228720 "
               "initialized for platform CUDA (this does not guarantee that XLA will be used). Devices:\n")


def test_the_start_up_filter_passes_tensorflows_created_device_line(capfd):
    assert not START_UP_LINE.match(CREATED_DEVICE)
    assert START_UP_LINE.match(XLA_SERVICE)  # the other INFO lines still go
    with held_stderr(START_UP_LINE):
        os.write(2, (XLA_SERVICE + CREATED_DEVICE).encode())
    assert capfd.readouterr().err == CREATED_DEVICE


def test_list_runs_counts_the_trials_of_a_run_committed_without_trial_folders(tmp_path, tiny_run):
    shutil.copytree(DOCS / "placement-run", tmp_path / "placement")
    assert not (tmp_path / "placement" / "trials").exists()
    shutil.copytree(tiny_run, tmp_path / "tiny")
    (tmp_path / "tiny" / "trials" / "no_bn-seed1" / "trial.json").unlink()  # an unfinished trial
    found = list_runs(tmp_path).set_index("config")
    assert found.loc["placement", ["trials_done", "trials_total"]].tolist() == [20, 20]
    assert found.loc["tiny", ["trials_done", "trials_total"]].tolist() == [3, 4]  # the folders count


def test_load_runs_labels_every_table_by_run(copy_tiny_run, tmp_path, tiny_results):
    first, second = copy_tiny_run(tmp_path / "a" / "tiny"), copy_tiny_run(tmp_path / "b" / "tiny")
    both = load_runs([first, second])
    assert list(dict.fromkeys(both.trials["run"])) == ["tiny", "tiny-2"]  # the same folder name, made unique
    for name in ("epochs", "trials", "targets", "discrepancy"):
        own, table = getattr(tiny_results, name), getattr(both, name)
        assert len(table) == 2 * len(own)
        assert (table["variant"] == table["run"] + "/" + table["variant_in_run"]).all()
        second_run = table[table["run"] == "tiny-2"].drop(columns=["run", "variant_in_run"])
        expected = own.assign(variant="tiny-2/" + own["variant"])
        pd.testing.assert_frame_equal(second_run.reset_index(drop=True), expected[list(second_run.columns)])
    assert [v.label for v in both.config.trial_variants] == [
        f"{run}/{label}" for run in ("tiny", "tiny-2") for label in ("no_bn", "bn_before_activation")]
    assert both.metadata["folders"] == {"tiny": str(first), "tiny-2": str(second)}
    right = both.predictions.correct("tiny-2/no_bn")
    assert {seed: value.mean() for seed, value in right.items()} == {
        seed: value.mean() for seed, value in tiny_results.predictions.correct("no_bn").items()}


def test_existing_summaries_work_on_several_runs(copy_tiny_run, tmp_path, tiny_results):
    both = load_runs([copy_tiny_run(tmp_path / "tiny"), copy_tiny_run(tmp_path / "other")])
    summary = summarize_variants(both)
    assert list(summary.index) == ["tiny/no_bn", "tiny/bn_before_activation",
                                   "other/no_bn", "other/bn_before_activation"]
    own = summarize_variants(tiny_results)
    for run in ("tiny", "other"):
        mine = summary.loc[[f"{run}/{label}" for label in own.index]]
        np.testing.assert_allclose(mine["test_accuracy_mean"], own["test_accuracy_mean"])


def test_load_runs_needs_a_list_of_folders(tiny_run):
    with pytest.raises(ValueError, match="expected a list of one or more run folders, received"):
        load_runs(str(tiny_run))
    with pytest.raises(ValueError, match=r"received \[\]"):
        load_runs([])


def test_comparing_a_run_with_itself(copy_tiny_run, tmp_path, tiny_results):
    both = load_runs([copy_tiny_run(tmp_path / "tiny"), copy_tiny_run(tmp_path / "again")])
    statistics = run_statistics(both)
    assert statistics[["run", "variant_in_run", "figure"]].values.tolist()[:2] == [
        ["tiny", "no_bn", "final_val_accuracy"], ["tiny", "no_bn", "test_accuracy"]]
    means = tiny_results.trials.groupby("variant")[["final_val_accuracy", "test_accuracy"]].mean()
    for row in statistics.itertuples():
        assert row.mean == pytest.approx(means.loc[row.variant_in_run, row.figure], abs=1e-12)
        assert row.n == 2
    differences = run_differences(both)
    assert len(differences) == 2 * 2  # two shared labels x two figures
    assert set(differences["test"]) == {PAIRED} and set(differences["baseline_run"]) == {"tiny"}
    assert (differences[["mean_difference", "ci_low", "ci_high"]] == 0).all().all()
    assert (differences["p_value"] == 1).all()


def test_a_difference_paired_by_seed():
    result = difference(pd.Series({0: 0.90, 1: 0.95}), pd.Series({1: 0.90, 0: 0.88}))
    half = scipy_stats.t.ppf(0.975, 1) * np.std([0.02, 0.05], ddof=1) / math.sqrt(2)
    assert result["test"] == PAIRED and (result["n_run"], result["n_baseline"]) == (2, 2)
    assert result["mean_difference"] == pytest.approx(0.035)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.035 - half, 0.035 + half))


def test_a_difference_over_different_seeds_is_welchs():
    values, baseline = np.array([0.90, 0.92, 0.95]), np.array([0.88, 0.90])
    result = difference(pd.Series(values, index=[0, 1, 2]), pd.Series(baseline, index=[3, 4]))
    first, second = values.var(ddof=1) / 3, baseline.var(ddof=1) / 2
    freedom = (first + second) ** 2 / (first ** 2 / 2 + second ** 2 / 1)  # Welch-Satterthwaite
    half = scipy_stats.t.ppf(0.975, freedom) * math.sqrt(first + second)
    gap = values.mean() - baseline.mean()
    assert result["test"] == WELCH and (result["n_run"], result["n_baseline"]) == (3, 2)
    assert (result["mean_difference"], result["ci_low"], result["ci_high"]) == pytest.approx(
        (gap, gap - half, gap + half))
    one = difference(pd.Series({0: 0.9}), pd.Series({1: 0.8, 2: 0.85}))
    assert one["mean_difference"] == pytest.approx(0.075) and math.isnan(one["ci_low"])
