"""Run folders: written whole or not at all, and replaced only when edgemed wrote them.

A run folder carries `.edgemed-run.json`, listing the files training wrote. `--overwrite` replaces a folder only
when that marker is there and the folder holds nothing else: files a user (or `edgemed export`) added beside the
checkpoint, or any folder edgemed did not write, are never deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from edgemed.core.errors import OverwriteError

MARKER = ".edgemed-run.json"
SCHEMA = "edgemed.run/1"


def write_marker(folder: Path) -> None:
    files = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    (folder / MARKER).write_text(json.dumps({"schema": SCHEMA, "files": files,
                                             "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))


def _written_by_edgemed(folder: Path) -> list[str] | None:
    """The files the marker lists, or None when the folder has no readable edgemed marker."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("schema") != SCHEMA or not isinstance(marker.get("files"), list):
        return None
    return [str(f) for f in marker["files"]]


def check_replaceable_run(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an `out` that exists and may not be replaced."""
    if out.is_symlink():
        raise OverwriteError(f"{out}: is a symbolic link; give the run folder itself")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise OverwriteError(f"{out}: exists and is not a folder; choose another `out`")
    if not overwrite:
        raise OverwriteError(f"{out}: already exists and is not empty; choose another `out` or pass `overwrite`")
    listed = _written_by_edgemed(out)
    if listed is None:
        raise OverwriteError(f"{out}: is not an edgemed run folder (no {MARKER}); `overwrite` replaces only earlier "
                             "edgemed runs. Remove it yourself or choose another `out`")
    foreign = sorted(p.name for p in out.iterdir() if p.name != MARKER and p.name not in listed)
    if foreign:
        raise OverwriteError(f"{out}: holds files training did not write ({', '.join(foreign[:5])}); move them "
                             "out first or choose another `out`")


def publish_run(staged: Path, out: Path, overwrite: bool) -> None:
    """Move the staged folder into place; an earlier run (checked again now) is moved aside, then deleted."""
    old = None
    if out.exists():
        check_replaceable_run(out, overwrite)
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    try:
        os.replace(staged, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
