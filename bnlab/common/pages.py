"""NumPy's large arrays on ordinary memory pages in bnlab's processes, unless the user chose otherwise.

On Linux NumPy asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for every array of 4 MB
or more (https://numpy.org/doc/stable/reference/global_state.html). On the 2-core machine bnlab
is measured on (a Firecracker virtual machine whose kernel hands free memory back to its host),
a new 172 MB array of the preprocessed training images then took 1.9 to 2.5 s instead of 0.03 s
once TensorFlow had started, nearly all of it kernel time, and copying it into a tensor as long.
`bnlab run quickstart` spent 10.3 to 11 s of kernel time with huge pages and 4.8 to 5 s without;
its run took 52 to 68 s against 43 to 49 s (5 runs each, interleaved; docs/speed.md).
On ordinary pages the same array takes 0.1 to 0.2 s everywhere: a small price where huge pages
were fast, and no figure changes (pages hold the same numbers).

`use_ordinary_pages` turns NumPy's request off for the process (the CLI and its worker processes
call it through `bnlab.common.startup`). `NUMPY_MADVISE_HUGEPAGE`, NumPy's own setting, set to 0
or 1 by the user, is left as it is.
"""

from __future__ import annotations

import os

VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


def use_ordinary_pages() -> bool:
    """Stop NumPy asking for huge pages for the arrays it allocates from now on; True if this changed it.

    Leaves NumPy as it is when the user set `NUMPY_MADVISE_HUGEPAGE`, or when NumPy has no switch
    (a NumPy without it, or not on Linux: nothing to turn off).
    """
    if VARIABLE in os.environ:
        return False
    switch = _switch()
    if switch is None:
        return False
    return bool(switch(False))


def huge_pages_on() -> bool | None:
    """Whether NumPy asks for huge pages now (None: it has no switch), for metadata.json."""
    switch = _switch()
    if switch is None:
        return None
    previous = switch(False)
    switch(previous)
    return bool(previous)


def _switch():
    """NumPy's run-time switch, `_set_madvise_hugepage(enabled) -> previous` (NumPy 1.19+), or None."""
    try:
        from numpy._core import multiarray  # NumPy 2
    except ImportError:
        from numpy.core import multiarray  # NumPy 1
    return getattr(multiarray, "_set_madvise_hugepage", None)
