"""SIGTERM ends a command cleanly, even while it waits inside a long native call.

Python runs signal handlers only between bytecodes, so a SIGTERM that arrives while onnxruntime or OpenVINO builds
a session for a crafted model would wait for that call to return. `install` makes SIGTERM raise KeyboardInterrupt
in the main thread (so every `finally` runs and temporary files go), and starts a watchdog thread woken by the
signal itself (`signal.set_wakeup_fd`; those engines release the GIL while loading): if the command has not
ended `GRACE_S` seconds later, the watchdog removes the temporary files and folders still `track`ed and exits with
status 143.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

GRACE_S = 5.0
EXIT_STATUS = 128 + signal.SIGTERM
_tracked: set[Path] = set()
_lock = threading.Lock()
_installed = False


def track(path: Path) -> Path:
    """Remember a temporary file or folder to remove if the process has to be ended from the watchdog."""
    with _lock:
        _tracked.add(Path(path))
    return Path(path)


def forget(path: Path) -> None:
    with _lock:
        _tracked.discard(Path(path))


def _remove_tracked() -> None:
    with _lock:
        paths = list(_tracked)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        if signal.SIGTERM in data:
            time.sleep(GRACE_S)  # the main thread's own clean-up normally ends the process before this
            _remove_tracked()
            os._exit(EXIT_STATUS)


def install() -> None:
    """SIGTERM as KeyboardInterrupt, with the watchdog; once per process, from the main thread only."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        os.close(read_fd)
        os.close(write_fd)
        return
    threading.Thread(target=_watch, args=(read_fd,), name="edgemed-sigterm", daemon=True).start()
    _installed = True
