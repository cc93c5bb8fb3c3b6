"""NumPy's huge pages off in bnlab's processes (bnlab.common.pages), unless the user chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bnlab.common import pages

pytestmark = pytest.mark.skipif(pages._switch() is None, reason="this NumPy has no huge-page switch")


@pytest.fixture
def numpy_pages(monkeypatch):
    """NumPy asking for huge pages, as it does by default on Linux; its setting restored afterwards."""
    monkeypatch.delenv(pages.VARIABLE, raising=False)
    previous = pages._switch()(True)
    yield
    pages._switch()(previous)


def test_ordinary_pages_turn_numpys_request_off(numpy_pages):
    assert pages.huge_pages_on() is True
    assert pages.use_ordinary_pages() is True
    assert pages.huge_pages_on() is False
    assert pages.use_ordinary_pages() is False  # already off: nothing changed


def test_a_users_own_choice_is_kept(numpy_pages, monkeypatch):
    monkeypatch.setenv(pages.VARIABLE, "1")
    assert pages.use_ordinary_pages() is False
    assert pages.huge_pages_on() is True


@pytest.mark.parametrize("choice, expected", [(None, False), ("1", True)])
def test_the_command_line_turns_them_off_and_records_it(choice, expected):
    env = {name: value for name, value in os.environ.items() if name != pages.VARIABLE}
    if choice is not None:
        env[pages.VARIABLE] = choice
    code = ("import json; from bnlab.common.startup import import_keras_quietly; import_keras_quietly(); "
            "from bnlab.common.environment import environment_record; "
            "print(json.dumps(environment_record()['numpy_huge_pages']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) is expected
