"""Holding back the C++ libraries' start-up lines: only those go, everything else comes out."""

import os
import subprocess
import sys

import pytest

from bnlab.common.startup import START_UP_LINE, held_stderr

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = "I0000 00:00:1795670862.838565   20776 port.cc:153] oneDNN custom operations are on.\n"
CUDA_STUB = "W0000 00:00:1795670862.839725   20776 cudart_stub.cc:31] Could not find cuda drivers.\n"
CU_INIT = "E0000 00:00:1795670866.819233   20776 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
REAL_ERROR = "E0000 00:00:1795670866.819233   20776 op_kernel.cc:1830] OP_REQUIRES failed: out of memory\n"
PLAIN = "Traceback (most recent call last): a line of no library's format\n"


@pytest.mark.parametrize("line", [ABSL, ONEDNN, CUDA_STUB, CU_INIT])
def test_start_up_lines_match(line):
    assert START_UP_LINE.match(line)


@pytest.mark.parametrize("line", [REAL_ERROR, PLAIN, "I0000 is not how a glog line goes\n"])
def test_other_lines_do_not_match(line):
    assert not START_UP_LINE.match(line)


def test_held_stderr_drops_start_up_lines_written_to_the_descriptor(capfd):
    with held_stderr(START_UP_LINE):
        os.write(2, (ABSL + ONEDNN + REAL_ERROR + CUDA_STUB + CU_INIT + PLAIN).encode())
    assert capfd.readouterr().err == REAL_ERROR + PLAIN


def test_held_stderr_writes_the_other_lines_out_when_the_block_raises(capfd):
    with pytest.raises(ImportError, match="broken"):
        with held_stderr(START_UP_LINE):
            os.write(2, (ONEDNN + PLAIN).encode())
            raise ImportError("broken backend")
    assert capfd.readouterr().err == PLAIN


def test_held_stderr_restores_the_descriptor(capfd):
    with held_stderr(START_UP_LINE):
        pass
    os.write(2, PLAIN.encode())
    assert capfd.readouterr().err == PLAIN


def test_held_stderr_without_descriptor_2_runs_the_block():
    code = ("import os, sys\n"
            "os.close(2)\n"
            "from bnlab.common.startup import START_UP_LINE, held_stderr\n"
            "with held_stderr(START_UP_LINE):\n"
            "    print('block ran')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "block ran\n"
