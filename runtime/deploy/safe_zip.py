"""Reading a bundle (a zip or a folder) as data, validated before a byte is written anywhere.

A zip is refused when any member has an absolute name, a `..` component, a backslash or drive letter, a
sub-folder, a link, a duplicate name, or when the member count, the declared total size or a member's
compression ratio exceeds its limit (`edgemed.core.limits`). Members are then read into memory, each at most
its declared size (zipfile checks the CRC). A bundle folder is refused when it holds a symbolic link or a
sub-folder. Nothing here writes: `private_copy` puts validated files into a fresh folder only this user can read.
"""

from __future__ import annotations

import os
import stat
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

from edgemed.core.atomic import private_tempdir, remove_tempdir
from edgemed.core.errors import BundleError
from edgemed.core.limits import LIMITS, check, limit
from edgemed.core.zip_errors import ZIP_ERRORS


def check_member_name(name: str, where: str) -> None:
    """A plain file name: no folders, no absolute paths, no parent references, no drive letters."""
    pure = PurePosixPath(name)
    if (not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name or ".." in pure.parts
            or len(pure.parts) != 1 or name in (".", "..") or "\x00" in name):
        raise BundleError(f"{where}: refused: member {name!r} is not a plain file name (absolute paths, '..', "
                          "folders and drive letters are not allowed in a bundle)")


def check_twins(names: list[str], where: str) -> None:
    """Refuse names that differ only in case or Unicode form (`Model.onnx` and `model.onnx`, `é` composed and
    decomposed): on a case-insensitive or normalising file system one would silently replace the other."""
    seen: dict[str, str] = {}
    for name in names:
        key = unicodedata.normalize("NFKC", name).casefold()
        if key in seen and seen[key] != name:
            raise BundleError(f"{where}: refused: members {seen[key]!r} and {name!r} differ only in case or Unicode "
                              "form; one would replace the other on many file systems")
        seen[key] = name


def read_zip(path: Path) -> dict[str, bytes]:
    where = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as exc:
        raise BundleError(f"{where}: neither a bundle folder nor a readable zip") from exc
    with archive as z:
        infos = z.infolist()
        check("bundle_members", len(infos), where)
        names = [i.filename for i in infos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BundleError(f"{where}: refused: duplicate member names {dupes}")
        check_twins(names, where)
        total = 0
        for info in infos:
            check_member_name(info.filename, where)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer recorded no Unix file type
            if info.is_dir() or (kind and kind != stat.S_IFREG):
                raise BundleError(f"{where}: refused: member {info.filename!r} is a link, folder or device, not a "
                                  "plain file")
            if info.flag_bits & 0x1:
                raise BundleError(f"{where}: refused: member {info.filename!r} is encrypted")
            total += info.file_size
            check("bundle_mb", total, f"{where}: uncompressed contents", scale=2**20)
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limit("zip_ratio"):
                raise BundleError(f"{where}: refused: member {info.filename!r} expands {ratio:,.0f}x (over "
                                  f"{limit('zip_ratio'):g}x): a zip bomb? Set {LIMITS['zip_ratio'].env} to raise "
                                  "the limit if the bundle is genuine")
        members = {}
        for info in infos:
            try:
                with z.open(info) as f:
                    data = f.read(info.file_size + 1)
            except ZIP_ERRORS as exc:  # a local header's name flagged UTF-8 that is not, found by fuzzing, and others
                raise BundleError(f"{where}: member {info.filename!r} cannot be read ({exc})") from exc
            if len(data) != info.file_size:
                raise BundleError(f"{where}: member {info.filename!r} is not the size its header declares")
            members[info.filename] = data
    return members


def read_folder(path: Path) -> dict[str, bytes]:
    where = str(path)
    if path.is_symlink():
        raise BundleError(f"{where}: refused: the bundle folder is a symbolic link")
    entries = list(path.iterdir())
    check("bundle_members", len(entries), where)
    check_twins([e.name for e in entries], where)
    total, members = 0, {}
    for entry in sorted(entries):
        if entry.is_symlink():
            raise BundleError(f"{where}: refused: {entry.name} is a symbolic link; a bundle holds plain files only")
        if not entry.is_file():
            raise BundleError(f"{where}: refused: {entry.name} is not a plain file; a bundle holds no folders")
        total += entry.stat().st_size
        check("bundle_mb", total, f"{where}: contents", scale=2**20)
        members[entry.name] = entry.read_bytes()
    return members


def read_bundle_files(path: Path) -> dict[str, bytes]:
    """Every file of a bundle folder or zip, validated, in memory."""
    path = Path(path)
    if path.is_symlink() and path.is_dir():
        raise BundleError(f"{path}: refused: the bundle folder is a symbolic link")
    if path.is_dir():
        return read_folder(path)
    if path.is_file():
        return read_zip(path)
    raise BundleError(f"{path}: no such bundle")


def private_copy(files: dict[str, bytes]) -> Path:
    """Write validated files into a fresh folder readable by this user only; the caller removes it."""
    folder = private_tempdir(prefix="edgemed-bundle-")
    try:
        for name, data in files.items():
            check_member_name(name, str(folder))
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
    except BaseException:
        remove_tempdir(folder)
        raise
    return folder
