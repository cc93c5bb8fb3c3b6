"""A wheel built from this checkout ships what bnlab needs offline: every config and the MNIST files.

The wheel is built as a user without network access would (`pip wheel . --no-deps
--no-build-isolation`), so the build backend named in pyproject.toml must be installed beside
bnlab. Its file list is read with zipfile, then the unpacked wheel is imported, from a folder with
no ./configs, to check that bnlab finds its configs and loads its MNIST copy from there.
"""

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
               "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


def build_backend() -> str:
    """The top-level module of pyproject.toml's build backend ("hatchling" for "hatchling.build")."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    found = re.search(r'^build-backend\s*=\s*"([\w.]+)"', text, re.MULTILINE)
    assert found, "pyproject.toml names no build-backend in [build-system]"
    return found.group(1).split(".")[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    backend = build_backend()
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the build backend {backend!r} is not installed, so no wheel can be built offline "
                    f"(--no-build-isolation); install it beside bnlab: pip install {backend}")
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}{result.stderr}"
    (path,) = out.glob("bnlab-*.whl")
    return path


def test_the_wheel_ships_the_mnist_files_unchanged(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(name).name: archive.read(name) for name in archive.namelist()
                   if name.startswith("bnlab/mnist/")}
    assert sorted(name for name in shipped if name.endswith(".gz")) == MNIST_FILES
    for name in [*MNIST_FILES, "SHA256SUMS"]:
        original = (REPO_ROOT / "bnlab" / "mnist" / name).read_bytes()
        assert len(shipped[name]) == len(original), name
        assert hashlib.sha256(shipped[name]).digest() == hashlib.sha256(original).digest(), name


def test_the_wheel_ships_every_config(wheel):
    assert len(CONFIGS) >= 10, "the checkout's configs/ folder is missing or nearly empty"
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        for config in CONFIGS:
            name = f"bnlab/configs/{config.name}"  # where bnlab.config.config_dirs() looks in an install
            assert sizes.get(name) == config.stat().st_size, f"{name} missing or changed in {wheel.name}"
            assert archive.read(name) == config.read_bytes()


def test_the_wheel_holds_the_package_and_its_command_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        assert "bnlab = bnlab.cli:main" in archive.read(entry_points).decode()
    assert [n for n in names if not n.startswith(("bnlab/", "bnlab-"))] == []  # no tests, notebooks, runs
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []
    assert "bnlab/runs/tracking.py" in names and "bnlab/__init__.py" in names


def test_an_installed_wheel_finds_its_configs_and_data(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    code = (
        "import json, bnlab, bnlab.config as c, bnlab.data.mnist as m\n"
        "config = c.load_config('tiny')\n"
        "data = m.load_mnist()\n"  # checks every array against the official SHA-256
        "print(json.dumps({'package': bnlab.__file__, 'dirs': [str(d) for d in c.config_dirs()],\n"
        "                  'configs': c.list_configs(), 'tiny': config.name, 'images': len(data[0][0])}))\n"
    )
    elsewhere = tmp_path / "elsewhere"  # no ./configs here: only the shipped ones can be found
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["package"] == str(site / "bnlab" / "__init__.py")  # the wheel's, not this checkout's
    assert found["dirs"] == [str(site / "bnlab" / "configs")]
    assert found["configs"] == [config.stem for config in CONFIGS]
    assert (found["tiny"], found["images"]) == ("tiny", 60000)
