"""An exclusive lock on a folder, held while one process writes into it, on every operating system.

It is filelock's `FileLock` on `FOLDER/.lock`, an OS lock (flock on Unix, LockFileEx on Windows):
the operating system releases it when the holder ends in any way, SIGKILL included, so a crashed
run never leaves its folder locked. No module here imports `fcntl`, so code that only reads run
folders (`load_results`, `bnlab report`, the notebooks) imports on Windows too.

The holder writes its process id into the lock file, so that a second process can name it.
Windows keeps the locked byte of the file from other handles: there the id may read "unknown".
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE_NAME = ".lock"


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """`with FolderLock(folder):` holds `folder/.lock` for the block; the folder must exist.

    Raises:
        FolderInUseError: on entering, when another process (or another `FolderLock` in this
            one) holds the folder; the message names the holder's process id.

    Example:
        >>> with FolderLock(Path("runs/tiny")):
        ...     pass  # only this process writes into runs/tiny here
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE_NAME
        # not thread-local: the thread that releases it need not be the one that took it
        self._lock = FileLock(self.path, timeout=0, thread_local=False)

    def __enter__(self) -> "FolderLock":
        # read before trying too: filelock 3.x emptied the file on a failed try (tox-dev/filelock#591)
        earlier = _holder(self.path)
        try:
            self._lock.acquire()
        except Timeout:
            holder = _holder(self.path) or earlier or "unknown"
            raise FolderInUseError(
                f"{self.path.parent} is in use by another bnlab process (pid {holder}). "
                "Wait for it to finish, or choose another folder with --out."
            ) from None
        try:
            self.path.write_text(str(os.getpid()), encoding="utf-8")
        except OSError:  # Windows: the locked byte cannot be written through a second handle
            pass
        return self

    def __exit__(self, *exc_info) -> None:
        self._lock.release()


def _holder(path: Path) -> str:
    """The process id the holder wrote into the lock file; "" when there is none or it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
