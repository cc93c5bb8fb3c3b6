"""Nothing a user does by mistake and no crash loses results or produces wrong ones."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import bnlab
from bnlab.analysis.summary import summarize_variants
from bnlab.config import resolve_config_path
from bnlab.runs import folder
from bnlab.runs.folder import RunFolderError, RunLock

CORPUS = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def bnlab_command(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "bnlab", *args], capture_output=True, text=True, timeout=600, **kwargs
    )


def start_bnlab(*args):
    # A process started in the background by a non-interactive shell (e.g. `.ci/run &`) ignores
    # SIGINT, and so would its children: give the child the default disposition, as a terminal does.
    return subprocess.Popen(
        [sys.executable, "-m", "bnlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def expected_message(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def assert_refused(result, out: Path, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and all(line.startswith("bnlab: ") for line in lines), lines
    for fragment in fragments:
        assert fragment in result.stderr
    assert not out.exists()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_config_corpus(path, tmp_path):
    out = tmp_path / "run"
    result = bnlab_command("run", str(path), "--out", str(out))
    assert_refused(result, out, expected_message(path), str(path))


def test_missing_file_directory_and_unreadable_file(tmp_path):
    out = tmp_path / "run"
    assert_refused(bnlab_command("run", str(tmp_path / "nope.yaml"), "--out", str(out)), out, "config file not found")
    (tmp_path / "folder.yaml").mkdir()
    assert_refused(bnlab_command("run", str(tmp_path / "folder.yaml"), "--out", str(out)), out,
                   "expected a YAML config file, received a directory")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage\x9c")
    assert_refused(bnlab_command("run", str(binary), "--out", str(out)), out, "cannot read the config file")


def small_config(tmp_path, seeds=2, **training):
    data = yaml.safe_load(resolve_config_path("tiny").read_text())
    data["variants"], data["seeds"] = ["no_bn", "bn_before_activation"], seeds
    data["training"].update(training)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for_trials(run_dir: Path, count: int, process, limit=300):
    deadline = time.monotonic() + limit
    while len(list(run_dir.glob("trials/*/trial.json"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.05)


def assert_complete_once(run_dir: Path, trials: int, epochs: int):
    loaded = bnlab.load_results(run_dir)
    assert len(loaded.trials) == trials
    assert not loaded.trials.duplicated(["variant", "seed"]).any()
    assert len(loaded.epochs) == trials * epochs
    assert len(loaded.targets) == trials * len(loaded.config.targets)
    assert loaded.metadata["status"] == "complete"


def test_sigkill_mid_trial_then_rerun_completes_every_trial_once(tmp_path):
    config, run_dir = small_config(tmp_path, epochs=6), tmp_path / "run"
    process = start_bnlab("run", str(config), "--out", str(run_dir), "--no-progress")
    wait_for_trials(run_dir, 1, process)
    time.sleep(0.5)  # into the second trial
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(run_dir.glob("trials/*/trial.json")))
    assert finished < 4
    rerun = bnlab_command("run", str(config), "--out", str(run_dir))
    assert rerun.returncode == 0, rerun.stderr
    assert f"Resuming: {finished} of 4 trials already finished." in rerun.stderr
    assert_complete_once(run_dir, trials=4, epochs=6)
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.parametrize("stop, code, says", [(signal.SIGINT, 130, "interrupted"),
                                              (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_stops_cleanly_and_says_how_to_resume(tmp_path, stop, code, says):
    # 2 variants x 10 seeds: the run cannot end before the signal lands, even on a loaded machine
    # (with 2 seeds CI once saw the run finish first: exit 0); it is stopped, so this costs nothing
    config, run_dir = small_config(tmp_path, seeds=10, epochs=6), tmp_path / "run"
    process = start_bnlab("run", str(config), "--out", str(run_dir), "--no-progress")
    wait_for_trials(run_dir, 1, process)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert says in stderr and "run the same command again to resume" in stderr
    assert json.loads((run_dir / "metadata.json").read_text())["status"] == "interrupted"
    saved = pd.read_csv(run_dir / "trials.csv")
    assert len(saved) >= 1 and set(saved["status"]) == {"complete"}
    assert len(saved) < 2 * 10  # stopped before the last trial


def test_divergence_is_recorded_and_the_run_goes_on(tmp_path):
    config = bnlab.load_config(small_config(tmp_path), {"training.optimizer.learning_rate": 1e6})
    config = config.with_variants(["no_bn"])
    run_dir = bnlab.run_experiment(config, tmp_path / "run")
    trials = bnlab.load_results(run_dir).trials
    assert list(trials["status"]) == ["diverged", "diverged"]  # both seeds ran
    assert list(trials["diverged_epoch"]) == [1, 1]
    summary = summarize_variants(bnlab.load_results(run_dir))
    assert summary.loc["no_bn", "seeds"] == 0 and summary.loc["no_bn", "diverged"] == 2


def test_summary_excludes_diverged_trials_from_means(tmp_path):
    loaded = bnlab.load_results(_fake_run(tmp_path))
    summary = summarize_variants(loaded)
    assert summary.loc["no_bn", "seeds"] == 2 and summary.loc["no_bn", "diverged"] == 1
    assert summary.loc["no_bn", "best_val_accuracy_mean"] == pytest.approx(0.95)
    assert summary.loc["no_bn", "reached_0.5"] == 2 and summary.loc["no_bn", "tried_0.5"] == 3


def _fake_run(tmp_path) -> Path:
    config = bnlab.load_config("tiny", {"variants": ["no_bn"], "seeds": 3})
    run_dir = tmp_path / "fake"
    folder.prepare_run_folder(run_dir, config)
    rows = [
        {"variant": "no_bn", "seed": s, "status": status, "best_val_accuracy": acc,
         "final_val_accuracy": acc, "test_accuracy": acc, "steady_epoch_seconds": 1.0,
         "final_accuracy_gap": 0.0, "epochs_to_0.5": 1, "epochs_to_0.97": None, "epochs_run": 2}
        for s, (status, acc) in enumerate([("complete", 0.94), ("diverged", 0.1), ("complete", 0.96)])
    ]
    pd.DataFrame(rows).to_csv(run_dir / "trials.csv", index=False)
    # the summary counts seeds that reached each target too: the diverged seed reached neither
    targets = [{"variant": "no_bn", "seed": row["seed"], "target": target, "reached": reached,
                "epochs_to_target": 1 if reached else None}
               for row in rows for target in config.targets
               for reached in [row["status"] == "complete" and target == 0.5]]
    pd.DataFrame(targets).to_csv(run_dir / "targets.csv", index=False)
    return run_dir


def test_second_run_into_a_folder_in_use_is_refused(tmp_path):
    config, run_dir = small_config(tmp_path), tmp_path / "run"
    run_dir.mkdir()
    with RunLock(run_dir):
        result = bnlab_command("run", str(config), "--out", str(run_dir))
    assert result.returncode == 2
    assert f"is in use by another bnlab process (pid {os.getpid()})" in result.stderr
    assert not list(run_dir.glob("trials/*/trial.json"))


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import time; from pathlib import Path; from bnlab.runs.folder import RunLock\n"
         f"with RunLock(Path({str(tmp_path)!r})):\n    print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunFolderError, match="in use by another bnlab process"):
        RunLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path):
        pass


def test_output_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = bnlab_command("run", "tiny", "--out", str(blocker / "run"))
    assert result.returncode == 2
    assert f"cannot create the run folder {blocker / 'run'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_disk_while_writing_keeps_earlier_results(tmp_path, monkeypatch):
    config = bnlab.load_config(small_config(tmp_path), {"seeds": 1})
    real_write = folder.write_atomic

    def write_until_full(path, text):
        if "bn_before_activation" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, text)

    monkeypatch.setattr(folder, "write_atomic", write_until_full)
    with pytest.raises(RunFolderError, match="No space left on device. Trials saved before are intact"):
        bnlab.run_experiment(config, tmp_path / "run")
    monkeypatch.setattr(folder, "write_atomic", real_write)
    loaded = bnlab.load_results(tmp_path / "run")
    assert list(loaded.trials["variant"]) == ["no_bn"]
    assert loaded.metadata["status"] == "failed"


def test_deterministic_runs_are_recorded(tmp_path):
    # in a subprocess: TensorFlow's op determinism cannot be switched off again in a process
    config, run_dir = small_config(tmp_path, deterministic=True, epochs=1), tmp_path / "run"
    result = bnlab_command("run", str(config), "--out", str(run_dir), "--seeds", "1", "--variants", "bn_input")
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "metadata.json").read_text())["deterministic"] is True
