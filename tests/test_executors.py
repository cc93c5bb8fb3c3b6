"""Executors: the executor config, and Dask runs against local ones (same trials, same numbers,
worker deaths, resume across executors). The Dask tests need the extra bnlab[dask]."""

import concurrent.futures
import os
import shutil
import signal
import sys
import time

import pandas as pd
import pytest

import bnlab
from bnlab import cli
from bnlab.common.startup import START_UP_LINE
from bnlab.config import ConfigError, ExecutorConfig
from bnlab.execution import executors
from bnlab.execution.outcomes import TrialsFailedError
from bnlab.runs import folder
from bnlab.runs.progress import NullProgress

TIMING = ["train_seconds", "val_seconds", "train_eval_seconds"]
TRIALS = [("no_bn", 0), ("bn_before_activation", 0), ("no_bn", 1), ("bn_before_activation", 1)]


def tiny(**overrides):
    return bnlab.load_config("tiny", {"variants": ["no_bn", "bn_before_activation"], **overrides})


def problems(**overrides):
    with pytest.raises(ConfigError) as caught:
        tiny(**overrides)
    return caught.value.problems


# ---- the config section ------------------------------------------------------------------


def test_executor_defaults_to_local():
    assert tiny().executor == ExecutorConfig("local", None, 2)
    assert executors.executor_record(tiny()) == {"name": "local"}


def test_executor_section_is_parsed_and_round_trips():
    config = tiny(**{"executor": {"name": "dask", "scheduler": "tcp://10.0.0.5:8786", "workers": 4}})
    assert config.executor == ExecutorConfig("dask", "tcp://10.0.0.5:8786", 4)
    assert bnlab.load_config(config.to_dict()) == config
    assert executors.executor_record(config) == {"name": "dask", "scheduler": "tcp://10.0.0.5:8786"}
    assert executors.executor_record(tiny(**{"executor.name": "dask", "executor.workers": 3}))["workers"] == 3


@pytest.mark.parametrize("overrides, expected", [
    ({"executor.name": "ray"}, "command line: executor.name: expected one of local, dask, received the string 'ray'."),
    ({"executor.name": "dask", "executor.workers": 0},
     "command line: executor.workers: expected a positive integer, received 0."),
    ({"executor.name": "dask", "executor.scheduler": " "},
     "command line: executor.scheduler: expected null or a Dask scheduler address such as tcp://HOST:8786, "
     "received the string ' '."),
    ({"executor.scheduler": "tcp://h:8786"},
     "command line: executor.scheduler: expected null when executor.name is local (a scheduler address is "
     "for the dask executor: --executor dask), received the string 'tcp://h:8786'."),
    ({"executor": "dask"}, "command line: executor: expected a mapping with keys name, scheduler, workers, "
                           "received the string 'dask'."),
    # a problem inside an overridden mapping came from the command line too
    ({"executor": {"name": "dask", "threads": 2}},
     "command line: executor.threads: expected no such key; allowed here: name, scheduler, workers, "
     "received an unknown key."),
])
def test_bad_executor_settings_are_one_line_each(overrides, expected):
    [line] = problems(**overrides)
    assert line.endswith(expected)


def test_a_run_folder_accepts_another_executor(tmp_path):
    folder.prepare_run_folder(tmp_path, tiny())
    folder.prepare_run_folder(tmp_path, tiny(**{"executor.name": "dask", "executor.workers": 5}))


def test_dask_missing_is_one_line_naming_the_extra_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` does when absent
    out = tmp_path / "run"
    code = cli.main(["run", "tiny", "--executor", "dask", "--out", str(out), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == ["bnlab: the dask executor was asked for (executor.name / --executor dask) but "
                     'dask.distributed is not installed: pip install -e ".[dask]" from a bnlab checkout, '
                     "or the extra 'dask' when installing a wheel"]
    assert not out.exists()


def test_scheduler_flag_without_dask_executor_is_refused(tmp_path, capsys):
    code = cli.main(["run", "tiny", "--scheduler", "tcp://h:8786", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "executor.scheduler: expected null when executor.name is local" in capsys.readouterr().err


def test_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = cli.main(["run", "tiny", "--variants", "no_bn", "--seeds", "1", "--executor", "dask",
                         "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "run"), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines[-1].startswith("bnlab: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not list((tmp_path / "run").glob("trials/*/trial.json"))


# ---- Dask runs against local ones ----------------------------------------------------------


class TrialSpy(NullProgress):
    """Remembers the trials saved and the epoch rows received."""

    def __init__(self):
        self.trained, self.rows = [], []

    def epoch(self, row):
        self.rows.append(row)

    def trial_done(self, record):
        self.trained.append((record.variant, record.seed))


def assert_same_metrics(run_dir, reference):
    """The same rows and per-epoch metrics in epochs.csv, timing columns aside.

    Accuracies are identical. Losses were bit-identical in 9 of the 10 tiny runs we compared
    across processes; the odd one, a local run, differed from all others by 1-2 float32 ulps
    (2.4e-7) in some losses: a process-level effect, not Dask's.
    """
    table, expected = (pd.read_csv(path / "epochs.csv").drop(columns=TIMING) for path in (run_dir, reference))
    exact = [c for c in table.columns if "loss" not in c]
    pd.testing.assert_frame_equal(table[exact], expected[exact], check_exact=True)
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-5, atol=0)


def assert_every_trial_once(run_dir):
    loaded = bnlab.load_results(run_dir)
    assert sorted(zip(loaded.trials["variant"], loaded.trials["seed"])) == sorted(TRIALS)
    assert set(loaded.trials["status"]) == {"complete"}
    assert len(loaded.epochs) == len(TRIALS) * loaded.config.training.epochs
    assert len(list(run_dir.glob("trials/*/trial.json"))) == len(TRIALS)


@pytest.fixture(scope="module")
def local_run(tiny_run, tiny_config):
    """The session's shared run (tests/conftest.py): this module's `tiny()` trained locally, read only."""
    assert tiny_config == tiny()
    return tiny_run


def test_dask_local_cluster_run_equals_local_run(local_run, tmp_path, capfd):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    code = cli.main(["run", "tiny", "--variants", "no_bn,bn_before_activation", "--executor", "dask",
                     "--workers", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    # the LocalCluster's workers write to this terminal: no TensorFlow start-up lines from them
    assert [line for line in capfd.readouterr().err.splitlines() if START_UP_LINE.match(line)] == []
    assert_every_trial_once(out)
    assert_same_metrics(out, local_run)
    figures = [c for c in pd.read_csv(out / "trials.csv").columns if "seconds" not in c and "loss" not in c]
    pd.testing.assert_frame_equal(pd.read_csv(out / "trials.csv")[figures],
                                  pd.read_csv(local_run / "trials.csv")[figures], check_exact=True)
    session = folder.read_metadata(out)["sessions"][-1]
    assert session["executor"] == {"name": "dask", "scheduler": "LocalCluster", "workers": 2, "threads_per_worker": 1}


def test_resuming_a_finished_run_on_dask_starts_no_cluster(local_run, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "LocalCluster", None)  # starting one would raise
    run_dir = tmp_path / "run"
    shutil.copytree(local_run, run_dir)
    bnlab.run_experiment(tiny(**{"executor.name": "dask"}), run_dir)
    session = folder.read_metadata(run_dir)["sessions"][-1]
    assert session["trials_to_run"] == 0 and session["executor"]["name"] == "dask"
    assert folder.read_metadata(run_dir)["status"] == "complete"


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster started by the test, so that the test can reach and kill its workers."""
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the kill point travels by value
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as local_cluster:
            with distributed.Client(local_cluster) as client:
                yield local_cluster, client
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def on_cluster(cluster):
    return tiny(**{"executor.name": "dask", "executor.scheduler": cluster[0].scheduler_address})


def cut_short(local_run, run_dir):
    """A copy of the local run as if it had been killed after its first two trials."""
    shutil.copytree(local_run, run_dir)
    for variant, seed in TRIALS[2:]:
        (run_dir / "trials" / f"{variant}-seed{seed}" / "trial.json").unlink()
    return run_dir


def test_resume_on_dask_of_a_local_run(local_run, cluster, tmp_path):
    run_dir = cut_short(local_run, tmp_path / "run")
    spy = TrialSpy()
    bnlab.run_experiment(on_cluster(cluster), run_dir, progress=spy)
    assert sorted(spy.trained) == sorted(TRIALS[2:])
    assert_every_trial_once(run_dir)
    assert_same_metrics(run_dir, local_run)
    sessions = folder.read_metadata(run_dir)["sessions"]
    assert [s["executor"]["name"] for s in sessions] == ["local", "dask"]
    assert [s["trials_to_run"] for s in sessions] == [4, 2]
    # the workers' epochs reached the progress display, tagged with their trial
    assert sorted({(r["variant"], r["seed"], r["epoch"]) for r in spy.rows}) == sorted(
        (v, s, e) for v, s in TRIALS[2:] for e in (1, 2))


def stall_once(marker, label, seed):
    """On a Dask worker: the first attempt of trial (label, seed) anywhere writes its pid to `marker`
    after its first epoch and then hangs, until the test kills its worker."""
    from bnlab.training import trial as runner

    original = runner.train_trial

    def train_trial(config, variant, trial_seed, splits, on_epoch=lambda row: None, **kwargs):
        def on_epoch_then_stall(row):
            on_epoch(row)
            if (variant.label, trial_seed) != (label, seed):
                return
            try:
                handle = os.open(marker + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # a later attempt: train normally
            os.close(handle)
            with open(marker + ".tmp", "w") as stream:
                stream.write(str(os.getpid()))
            os.replace(marker + ".tmp", marker)
            time.sleep(600)

        return original(config, variant, trial_seed, splits, on_epoch_then_stall, **kwargs)

    runner.train_trial = train_trial


def run_and_kill_worker(config, run_dir, cluster, marker, progress):
    """Run `config` in a thread; SIGKILL the worker process that stalls mid-trial; the outcome."""
    cluster[1].run(stall_once, str(marker), "bn_before_activation", 1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(bnlab.run_experiment, config, run_dir, progress=progress)
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert not running.done(), running.result()
            assert time.monotonic() < deadline, "the trial never reached its first epoch"
            time.sleep(0.1)
        pid = int(marker.read_text())
        assert pid in cluster[1].run(os.getpid).values()
        os.kill(pid, signal.SIGKILL)
        return concurrent.futures.wait([running])[0].pop()


def test_worker_killed_mid_trial_is_retried_and_recorded_once(local_run, cluster, tmp_path):
    run_dir, spy = cut_short(local_run, tmp_path / "run"), TrialSpy()
    outcome = run_and_kill_worker(on_cluster(cluster), run_dir, cluster, tmp_path / "pid", spy)
    assert outcome.result() == run_dir  # no failure: Dask rescheduled the trial
    assert sorted(spy.trained) == sorted(TRIALS[2:])
    assert_every_trial_once(run_dir)
    assert_same_metrics(run_dir, local_run)
    assert folder.read_metadata(run_dir)["status"] == "complete"


def test_worker_deaths_beyond_dask_allowed_failures_are_recorded_then_resumed_locally(
        local_run, cluster, tmp_path):
    scheduler, run_dir = cluster[0].scheduler, cut_short(local_run, tmp_path / "run")
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0  # the first death fails the task
    try:
        outcome = run_and_kill_worker(on_cluster(cluster), run_dir, cluster, tmp_path / "pid", NullProgress())
    finally:
        scheduler.allowed_failures = allowed
    with pytest.raises(TrialsFailedError, match=r"^1 trial\(s\) failed .*: bn_before_activation "
                                                           r"seed 1 \(KilledWorker: .*run the same command again"):
        outcome.result()
    assert not (run_dir / "trials" / "bn_before_activation-seed1" / "trial.json").exists()
    assert len(pd.read_csv(run_dir / "trials.csv")) == 3
    metadata = folder.read_metadata(run_dir)
    assert metadata["status"] == "failed"
    [failure] = metadata["sessions"][-1]["failed_trials"]
    assert (failure["variant"], failure["seed"]) == ("bn_before_activation", 1)
    assert failure["error"].startswith("KilledWorker: ")
    spy = TrialSpy()
    bnlab.run_experiment(tiny(), run_dir, progress=spy)  # the same run, resumed with the local executor
    assert spy.trained == [("bn_before_activation", 1)]
    assert_every_trial_once(run_dir)
    assert_same_metrics(run_dir, local_run)
