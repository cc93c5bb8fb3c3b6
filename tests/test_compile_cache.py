"""The persistent XLA cache (bnlab.common.compile_cache): where it goes, when it is off, and that a
run that loads its executables gives the figures of a run that compiled them."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from bnlab.common import compile_cache
from bnlab.config.loader import resolve_config_path


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("TF_XLA_FLAGS", "XLA_FLAGS", compile_cache.VARIABLE):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_flag_names_a_folder_per_machine_under_the_chosen_one(clean_env, tmp_path):
    clean_env.setenv(compile_cache.VARIABLE, str(tmp_path))
    clean_env.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    folder = compile_cache.enable_compile_cache()
    assert folder.parent == tmp_path and folder.is_dir() and folder.name.startswith("tf")
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {compile_cache.FLAG}={folder}"


def test_the_default_folder_is_the_users_cache(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.cache_folder().parent == tmp_path / "bnlab" / "xla"


@pytest.mark.parametrize("choice", ["off", "OFF", "0", "none"])
def test_off_leaves_tensorflow_as_it_is(clean_env, choice):
    clean_env.setenv(compile_cache.VARIABLE, choice)
    assert compile_cache.enable_compile_cache() is None
    assert "TF_XLA_FLAGS" not in os.environ


def test_a_users_own_cache_folder_is_kept(clean_env, tmp_path):
    own = f"{compile_cache.FLAG}={tmp_path}"
    clean_env.setenv("TF_XLA_FLAGS", own)
    assert compile_cache.enable_compile_cache() is None
    assert os.environ["TF_XLA_FLAGS"] == own


def test_compiler_flags_and_gpus_give_another_folder(clean_env):
    plain = compile_cache.machine_key()
    clean_env.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    flags = compile_cache.machine_key()
    clean_env.setattr(compile_cache, "_gpu_description", lambda: "Model: NVIDIA H200")
    assert len({plain, flags, compile_cache.machine_key()}) == 3


def test_a_run_that_loads_every_executable_gives_the_figures_of_the_run_that_compiled_them(tmp_path):
    data = yaml.safe_load(resolve_config_path("tiny").read_text())
    data.update(variants=["bn_before_activation"], seeds=1)
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(data))
    cache, runs = tmp_path / "cache", []
    env = {**_environment_without_flags(), compile_cache.VARIABLE: str(cache)}
    for name in ("compiled", "loaded"):
        done = subprocess.run([sys.executable, "-m", "bnlab", "run", str(config), "--out", str(tmp_path / name),
                               "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr
        entries = sorted(cache.rglob("*.pb"))
        runs.append((pd.read_csv(tmp_path / name / "trials.csv"), entries))
    (first, compiled), (second, loaded) = runs
    assert compiled, "the first run wrote no executable into the cache"
    assert loaded == compiled  # the second run compiled nothing new: it loaded every executable
    figures = [column for column in first.columns if "seconds" not in column]
    pd.testing.assert_frame_equal(first[figures], second[figures])


def _environment_without_flags() -> dict:
    return {name: value for name, value in os.environ.items() if name not in ("TF_XLA_FLAGS", "XLA_FLAGS")}
