"""The persistent XLA caches (bnlab.common.compile_cache): where they go, when they are off, and that a
run that loads its executables gives the figures of a run that compiled them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from bnlab.common import compile_cache
from bnlab.config.loader import resolve_config_path


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("TF_XLA_FLAGS", "XLA_FLAGS", compile_cache.VARIABLE, compile_cache.JAX_FOLDER,
                 compile_cache.JAX_MIN_SECONDS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_settings_name_a_folder_per_library_and_machine_under_the_chosen_one(clean_env, tmp_path):
    clean_env.setenv(compile_cache.VARIABLE, str(tmp_path))
    clean_env.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    folders = compile_cache.enable_compile_cache()
    assert set(folders) == {"tensorflow", "jax"}  # both are installed for the tests
    assert [folders[name].parent for name in ("tensorflow", "jax")] == [tmp_path, tmp_path]
    assert folders["tensorflow"].name.startswith("tf2.") and folders["jax"].name.startswith("jax0.")
    assert all(folder.is_dir() for folder in folders.values())
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {compile_cache.FLAG}={folders['tensorflow']}"
    assert os.environ[compile_cache.JAX_FOLDER] == str(folders["jax"])
    assert os.environ[compile_cache.JAX_MIN_SECONDS] == "0"  # JAX keeps every compilation, not those over 1 s


def test_the_default_folder_is_the_users_cache(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.cache_folder().parent == tmp_path / "bnlab" / "xla"


@pytest.mark.parametrize("choice", ["off", "OFF", "0", "none"])
def test_off_leaves_the_libraries_as_they_are(clean_env, choice):
    clean_env.setenv(compile_cache.VARIABLE, choice)
    assert compile_cache.enable_compile_cache() == {}
    assert not {"TF_XLA_FLAGS", compile_cache.JAX_FOLDER, compile_cache.JAX_MIN_SECONDS} & set(os.environ)


def test_a_users_own_cache_folders_are_kept(clean_env, tmp_path):
    own = f"{compile_cache.FLAG}={tmp_path}"
    clean_env.setenv("TF_XLA_FLAGS", own)
    clean_env.setenv(compile_cache.JAX_FOLDER, str(tmp_path / "jax"))
    clean_env.setenv(compile_cache.JAX_MIN_SECONDS, "2")
    assert compile_cache.enable_compile_cache() == {}
    assert os.environ["TF_XLA_FLAGS"] == own and os.environ[compile_cache.JAX_FOLDER] == str(tmp_path / "jax")
    assert os.environ[compile_cache.JAX_MIN_SECONDS] == "2"


def test_a_library_that_is_not_installed_gets_no_folder(clean_env, tmp_path):
    clean_env.setenv(compile_cache.VARIABLE, str(tmp_path))
    clean_env.setattr(compile_cache, "_version", lambda library: None if library == "jax" else "2.21.0")
    assert set(compile_cache.enable_compile_cache()) == {"tensorflow"}
    assert compile_cache.JAX_FOLDER not in os.environ


def test_compiler_flags_and_gpus_give_another_folder(clean_env):
    plain = compile_cache.machine_key()
    clean_env.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    flags = compile_cache.machine_key()
    clean_env.setattr(compile_cache, "_gpu_description", lambda: "Model: NVIDIA H200")
    assert len({plain, flags, compile_cache.machine_key()}) == 3
    assert compile_cache.machine_key("jax") != compile_cache.machine_key("tensorflow")


# each library's cache entries: TensorFlow's serialized executables, JAX's compiled programs
ENTRIES = {"tensorflow": "tf*/*.pb", "jax": "jax*/*-cache"}


@pytest.mark.parametrize("backend", list(ENTRIES))
def test_a_run_that_loads_every_executable_gives_the_figures_of_the_run_that_compiled_them(backend, tmp_path):
    cache, runs = tmp_path / "cache", []
    for name in ("compiled", "loaded"):
        done = _tiny_run(tmp_path, name, "bn_before_activation", cache, backend)
        # TensorFlow reads each cached executable as text first and logs the failure: bnlab's log level hides it
        assert "Error parsing text-format" not in done.stderr
        entries = sorted(cache.glob(ENTRIES[backend]))
        runs.append((pd.read_csv(tmp_path / name / "trials.csv"), entries))
    (first, compiled), (second, loaded) = runs
    assert compiled, "the first run wrote no executable into the cache"
    assert loaded == compiled  # the second run compiled nothing new: it loaded every executable
    figures = [column for column in first.columns if "seconds" not in column]
    pd.testing.assert_frame_equal(first[figures], second[figures])
    metadata = json.loads((tmp_path / "loaded" / "metadata.json").read_text())  # the folders, for the record
    assert metadata["jax_compilation_cache_dir"] == str(next(cache.glob("jax*")))
    assert metadata["tf_xla_flags"] == f"{compile_cache.FLAG}={next(cache.glob('tf*'))}"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads under 128 bytes: one-byte lengths)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_entries_cut_short_are_dropped_and_whole_ones_kept(tmp_path):
    whole = _field(1, b"key") + _field(2, b"hlo module" * 10) + _field(3, b"executable" * 12)
    (tmp_path / "whole.pb").write_bytes(whole)
    for cut in range(1, len(whole)):  # a writer killed after any byte
        (tmp_path / f"cut{cut}.pb").write_bytes(whole[:cut])
    (tmp_path / "no_executable.pb").write_bytes(_field(1, b"key") + _field(2, b"hlo module"))
    (tmp_path / "notes.txt").write_bytes(b"not an entry")
    dropped = compile_cache.drop_incomplete_entries(tmp_path)
    assert len(dropped) == len(whole)  # every cut and the entry without an executable
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "whole.pb"]


def test_only_stale_temporary_files_are_dropped(tmp_path):
    """A killed writer's temporary file (TensorFlow writes ENTRY.pbSUFFIX.tmp, then renames it) is
    deleted once stale; a fresh one may be another process's write in progress and is kept."""
    old, fresh = tmp_path / "entry.pbvm-1-2.tmp", tmp_path / "entry.pbvm-3-4.tmp"
    for path in (old, fresh):
        path.write_bytes(b"half an entry")
    hours_ago = time.time() - compile_cache.STALE_SECONDS - 60
    os.utime(old, (hours_ago, hours_ago))
    assert compile_cache.drop_incomplete_entries(tmp_path) == [old]
    assert [path.name for path in tmp_path.iterdir()] == [fresh.name]


def test_a_run_after_its_cache_entries_were_cut_short_compiles_again(tmp_path):
    """TensorFlow fails a training that loads an entry cut short ("Read less bytes than requested"):
    bnlab drops such entries before TensorFlow starts, and the computation is compiled again."""
    cache, trials = tmp_path / "cache", []
    for name in ("compiled", "after_a_kill"):
        _tiny_run(tmp_path, name, "no_bn", cache, "tensorflow")
        trials.append(pd.read_csv(tmp_path / name / "trials.csv"))
        entries = sorted(cache.glob(ENTRIES["tensorflow"]))
        assert entries and all(compile_cache._complete(entry) for entry in entries)
        for entry in entries:  # as a cache folder copied in part would leave them
            entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    figures = [column for column in trials[0].columns if "seconds" not in column]
    pd.testing.assert_frame_equal(trials[0][figures], trials[1][figures])


def _tiny_run(tmp_path, name: str, variant: str, cache, backend: str) -> subprocess.CompletedProcess:
    """`bnlab run` of the tiny config, one variant and seed, into tmp_path/name with `cache` as the compile cache."""
    data = yaml.safe_load(resolve_config_path("tiny").read_text())
    data.update(variants=[variant], seeds=1)
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**_environment_without_flags(), compile_cache.VARIABLE: str(cache), "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-m", "bnlab", "run", str(config), "--out", str(tmp_path / name),
                           "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    return done


def _environment_without_flags() -> dict:
    own = ("TF_XLA_FLAGS", "XLA_FLAGS", compile_cache.JAX_FOLDER, compile_cache.JAX_MIN_SECONDS, "TF_CPP_MIN_LOG_LEVEL")
    return {name: value for name, value in os.environ.items() if name not in own}
