"""Atomic file writes: a temporary file in the target folder, renamed into place, so readers never see half a file.

`mkstemp` creates files readable by their owner only; published files get the usual permissions
(0666 less the umask), so a model written by one account can be read by the service that runs it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def public_mode(directory: bool = False) -> int:
    """The mode a normally created file (0666) or folder (0777) gets under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)`, then publish the result at `path`; on any error nothing is left behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, public_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: Path, data: bytes | str) -> None:
    payload = data.encode() if isinstance(data, str) else data
    write_atomic(path, lambda tmp: tmp.write_bytes(payload))
