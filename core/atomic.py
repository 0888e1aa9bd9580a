"""Safe writes: outputs appear whole or not at all, never replace what edgemed did not create, never an input.

- `write_atomic` / `write_bytes_atomic`: a temporary file in the target folder, published under its name, so
  readers never see half a file. Unless `replace` (a command's `--force`), the file is published exclusively
  (a hard link, which fails if the name exists): a file created at the output path while the command ran is
  never replaced.
- `write_together`: several files (a model and its `.sha256` sidecar) published as a unit: if any fails, the
  ones already published are rolled back to what was there before.
- `check_output` / `check_outputs`: refuse an output path that is one of the command's inputs (or an existing
  file inside an input folder), two outputs at one path, and an existing one unless `force`.

`mkstemp` creates files readable by their owner only; published files get the usual permissions (0666 less the
umask), so a model written by one account can be read by the service that runs it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgemed.core.digest import sidecar_path  # noqa: F401  (re-exported: writers name sidecars through here)
from edgemed.core.errors import OverwriteError
from edgemed.core.interrupt import forget, track


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


def inside_folder(path: Path, folder: Path) -> bool:
    """True when `path` is an existing file within `folder` (an input folder whose files must not be replaced)."""
    try:
        return path.exists() and folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def check_output(path: Path | str, force: bool = False, inputs: Iterable[Path | str] = (), what: str = "output",
                 flag: str = "`force`", folder_ok: bool = False) -> Path:
    """Refuse `path` when it is (or links to) one of `inputs` or an existing file inside an input folder, or when
    it exists and `force` is not set (a folder only where `folder_ok`: the caller then decides what in it may be
    replaced)."""
    path = Path(path)
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        if _same(path, given) or (given.is_dir() and not folder_ok and inside_folder(path, given)):
            raise OverwriteError(f"{what} {path} is the input {given}; write the result to another file")
    if path.is_symlink():
        raise OverwriteError(f"{what} {path} is a symbolic link; refusing to write through it")
    if path.exists() and not force:
        raise OverwriteError(f"{what} {path} already exists; choose another path or pass {flag} to replace it")
    if path.is_dir() and not folder_ok:
        raise OverwriteError(f"{what} {path} is a folder; give a file name")
    return path


def check_outputs(outputs: dict[str, Path | str | None], force: bool = False,
                  inputs: Iterable[Path | str | None] = ()) -> None:
    """Every output (by what it is, e.g. {"-o": ..., "--json": ...}) checked as `check_output`, and no two at one
    path: a report written over the model it describes loses the model."""
    inputs = [i for i in inputs if i is not None]
    given = {what: Path(p) for what, p in outputs.items() if p is not None}
    names = list(given)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if given[a] == given[b] or _same(given[a], given[b]):
                raise OverwriteError(f"{a} and {b} name the same file {given[a]}; give each output its own path")
    for what, path in given.items():
        check_output(path, force, inputs, what=what)


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
    return track(Path(tmp))


def _discard(tmp: Path) -> None:
    tmp.unlink(missing_ok=True)
    forget(tmp)


def publish_file(tmp: Path, path: Path, replace: bool) -> None:
    """Give the finished temporary file its name: replacing what is there only when `replace`."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if the name exists: exclusive, and still whole when it appears
    except FileExistsError:
        raise OverwriteError(f"{path} appeared while edgemed was writing it and was left as it is; pass `force` to "
                             "replace it") from None
    except OSError:  # a file system without hard links: reserve the name exclusively, then fill it
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        except FileExistsError:
            raise OverwriteError(f"{path} appeared while edgemed was writing it and was left as it is; pass `force` "
                                 "to replace it") from None
        os.replace(tmp, path)


def write_atomic(path: Path, writer: Callable[[Path], None], mode: int | None = None, replace: bool = False) -> None:
    """Call `writer(tmp_path)`, then publish the result at `path` (with `mode`, else the usual permissions), over an
    existing file only when `replace`; on any error (Ctrl-C included) nothing is left."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        writer(tmp)
        os.chmod(tmp, public_mode() if mode is None else mode)
        publish_file(tmp, path, replace)
    finally:
        _discard(tmp)


def write_bytes_atomic(path: Path, data: bytes | str, mode: int | None = None, replace: bool = False) -> None:
    payload = data.encode() if isinstance(data, str) else data
    write_atomic(path, lambda tmp: tmp.write_bytes(payload), mode, replace)


def write_together(files: dict[Path, bytes], replace: bool = False) -> None:
    """Publish every file or none (each over an existing one only when `replace`): each is written to a temporary
    file first; the publications then run in order, and a failure (or Ctrl-C) part-way restores the files already
    replaced to their previous content and removes the ones created."""
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
            if replace and path.exists():
                backup = _temp_beside(path)
                shutil.copy2(path, backup)
                published.append((path, backup))  # restored from the backup if anything fails from here
                publish_file(tmp, path, replace)
            else:
                publish_file(tmp, path, replace)
                published.append((path, None))  # ours: removed if a later file fails
        for _, backup in published:
            if backup is not None:
                _discard(backup)
        published.clear()
    finally:
        for path, backup in reversed(published):  # only non-empty when a publication failed
            if backup is not None:
                os.replace(backup, path)
                forget(backup)
            else:
                path.unlink(missing_ok=True)
        for tmp, _ in staged:
            _discard(tmp)


def private_tempdir(parent: Path | None = None, prefix: str = ".edgemed-") -> Path:
    """A fresh folder only this user can read (mkdtemp's 0700); the caller removes it (`remove_tempdir`)."""
    import tempfile

    return track(Path(tempfile.mkdtemp(prefix=prefix, dir=parent)))


def remove_tempdir(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    forget(folder)


@contextlib.contextmanager
def temporary_folder(parent: Path | None = None, prefix: str = ".edgemed-") -> Iterator[Path]:
    """A private folder for the duration of a `with` block, removed on every exit path (SIGTERM included)."""
    folder = private_tempdir(parent, prefix)
    try:
        yield folder
    finally:
        remove_tempdir(folder)
