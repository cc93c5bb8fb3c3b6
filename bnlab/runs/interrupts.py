"""Ctrl-C and SIGTERM held back while a trial's files are written, so that they land between two saves.

Python raises KeyboardInterrupt (and bnlab's CLI raises `Terminated` on SIGTERM) wherever the main
thread is. Landing inside the save of a trial, e.g. inside numpy's zip writer for the test
predictions, it can leave a table half-written or turn into another exception on the way out
(zipfile: "Can't close the ZIP file while there is an open writing handle"), and the run then ends
with a traceback and exit code 1 instead of "interrupted ... run the same command again to resume".
`deferred_interrupts` records such a signal during the block and delivers it, to the handler that
was there before, once the block is done.
"""

from __future__ import annotations

import contextlib
import signal

_HELD = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_interrupts():
    """Within the block, SIGINT and SIGTERM are recorded, then delivered when the block ends.

    Outside the main thread (where signals cannot be handled) the block runs as it is.
    """
    received: list[int] = []
    try:
        previous = {number: signal.signal(number, lambda number, frame: received.append(number))
                    for number in _HELD}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
    for number in dict.fromkeys(received):  # each signal once, in the order they came
        signal.raise_signal(number)
