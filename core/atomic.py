"""Safe writes: outputs appear whole or not at all, never replace what edgemed did not create, never an input.

- `write_atomic` / `write_bytes_atomic`: a temporary file in the target folder, renamed into place, so readers
  never see half a file.
- `write_together`: several files (a model and its `.sha256` sidecar) published as a unit: if any rename fails,
  the ones already published are rolled back to what was there before.
- `check_output`: refuses an output path that is one of the command's inputs, and an existing one unless `force`.

`mkstemp` creates files readable by their owner only; published files get the usual permissions (0666 less the
umask), so a model written by one account can be read by the service that runs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from edgemed.core.errors import OverwriteError


def public_mode(directory: bool = False) -> int:
    """The mode a normally created file (0666) or folder (0777) gets under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(path: Path | str, force: bool = False, inputs: Iterable[Path | str] = (), what: str = "output",
                 flag: str = "--force", folder_ok: bool = False) -> Path:
    """Refuse `path` when it is (or links to) one of `inputs`, or when it exists and `force` is not set (a folder
    only where `folder_ok`: the caller then decides what in it may be replaced)."""
    path = Path(path)
    for given in inputs:
        if given is not None and _same(path, Path(given)):
            raise OverwriteError(f"{what} {path} is the input {given}; write the result to another file")
    if path.is_symlink():
        raise OverwriteError(f"{what} {path} is a symbolic link; refusing to write through it")
    if path.exists() and not force:
        raise OverwriteError(f"{what} {path} already exists; choose another path or pass {flag} to replace it")
    if path.is_dir() and not folder_ok:
        raise OverwriteError(f"{what} {path} is a folder; give a file name")
    return path


def check_output_folder(folder: Path | str, names: Iterable[str] = (), force: bool = False,
                        inputs: Iterable[Path | str] = (), what: str = "output folder") -> Path:
    """Before any work: `folder` must be a folder or not exist yet, and none of `names` in it may be replaced
    without `force` (nor be one of `inputs`)."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.is_dir():
        raise OverwriteError(f"{what} {folder} is a broken symbolic link; give a folder")
    if folder.exists() and not folder.is_dir():
        raise OverwriteError(f"{what} {folder} exists and is not a folder; give a folder for the results")
    inputs = tuple(inputs)
    for name in names:
        check_output(folder / name, force, inputs)
    return folder


def _temp_beside(path: Path) -> Path:
    import tempfile  # here, not at the top: loading a model (the runtime's cold start) writes nothing

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_atomic(path: Path, writer: Callable[[Path], None], mode: int | None = None) -> None:
    """Call `writer(tmp_path)`, then publish the result at `path` (with `mode`, else the usual permissions); on any
    error (Ctrl-C included) nothing is left."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        writer(tmp)
        os.chmod(tmp, public_mode() if mode is None else mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes | str, mode: int | None = None) -> None:
    payload = data.encode() if isinstance(data, str) else data
    write_atomic(path, lambda tmp: tmp.write_bytes(payload), mode)


def write_together(files: dict[Path, bytes]) -> None:
    """Publish every file or none: each is written to a temporary file first; the renames then run in order,
    and a failure (or Ctrl-C) part-way restores the files already replaced to their previous content."""
    import shutil

    staged: list[tuple[Path, Path]] = []
    published: list[tuple[Path, Path | None]] = []
    try:
        for path, data in files.items():
            tmp = _temp_beside(Path(path))
            staged.append((tmp, Path(path)))
            tmp.write_bytes(data)
            os.chmod(tmp, public_mode())
        for tmp, path in staged:
            backup = None
            if path.exists():
                backup = _temp_beside(path)
                shutil.copy2(path, backup)
            published.append((path, backup))
            os.replace(tmp, path)
        for _, backup in published:
            if backup is not None:
                backup.unlink(missing_ok=True)
        published.clear()
    finally:
        for path, backup in reversed(published):  # only non-empty when a rename failed
            if backup is not None:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def sidecar_path(path: Path) -> Path:
    """`model.onnx` -> `model.onnx.sha256`."""
    return path.with_name(path.name + ".sha256")


def private_tempdir(parent: Path | None = None, prefix: str = ".edgemed-") -> Path:
    """A fresh folder only this user can read (mkdtemp's 0700); the caller removes it."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
