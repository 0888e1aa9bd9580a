"""Reading `.npy` and `.npz` files safely: no pickles, and every size checked before memory is allocated.

A `.npy` header states dtype and shape; both are read and checked (numeric dtype, element count within
`array_mb`, header within `npy_header_bytes`, file long enough) before the data is read. A `.npz` is a zip: its
member count, declared sizes and compression ratios are checked first, and each member's header as above.
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgemed.core.errors import DataError, LimitError
from edgemed.core.limits import check, check_file_size, limit

NPZ_MAX_MEMBERS = 64
NPZ_RATIO_FACTOR = 5  # zero-padded arrays compress far better than models: npz members get 5x the zip limit


def _header(f: BinaryIO, where: str, allow_text: bool) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    max_header = int(limit("npy_header_bytes"))
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f, max_header_size=max_header)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = fmt.read_array_header_2_0(f, max_header_size=max_header)
        else:
            raise DataError(f"{where}: unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, KeyError, OverflowError, MemoryError, tokenize.TokenError) as exc:
        text = str(exc)
        if "max_header_size" in text or "header" in text and "large" in text:
            raise LimitError(f"{where}: the .npy header is longer than {max_header} bytes; set "
                             "EDGEMED_MAX_NPY_HEADER to raise the limit if the file is genuine") from exc
        raise DataError(f"{where}: not a readable .npy array ({text.splitlines()[0][:200]})") from exc
    kinds = "biufcUS" if allow_text else "biufc"
    if dtype.hasobject or dtype.kind not in kinds or dtype.fields is not None:
        raise DataError(f"{where}: arrays of dtype {dtype} are refused; store plain numbers"
                        + (" (or strings)" if allow_text else ""))
    count = int(np.prod(shape, dtype=object)) if shape else 1
    check("array_mb", count * dtype.itemsize, where, scale=2**20)
    return tuple(shape), dtype


def load_npy(path: Path | str, allow_text: bool = False) -> np.ndarray:
    """One array from a `.npy` file; `allow_text` also accepts string arrays (labels, names)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    check_file_size(path)
    try:
        with open(path, "rb") as f:
            _header(f, str(path), allow_text)
        return np.load(path, allow_pickle=False, max_header_size=int(limit("npy_header_bytes")))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({str(exc).splitlines()[0][:200]})") from exc


def npy_ndim(path: Path | str) -> int:
    """The number of dimensions a `.npy` file's header states (the data is not read)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return len(_header(f, str(path), allow_text=True)[0])
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def load_npz(path: Path | str, allow_text: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of a `.npz` file; members named in `allow_text` may hold strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    check_file_size(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > NPZ_MAX_MEMBERS:
                raise DataError(f"{path}: {len(infos)} arrays; a data file holds at most {NPZ_MAX_MEMBERS}")
            total = 0
            for info in infos:
                if not info.filename.endswith(".npy") or "/" in info.filename or info.is_dir():
                    raise DataError(f"{path}: member {info.filename!r} is not an array (.npy) at the top level")
                total += info.file_size
                check("array_mb", total, f"{path}: decompressed", scale=2**20)
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limit("zip_ratio") * NPZ_RATIO_FACTOR:
                    raise LimitError(f"{path}: member {info.filename} expands {ratio:,.0f}x (over "
                                     f"{limit('zip_ratio') * NPZ_RATIO_FACTOR:g}x): a zip bomb? Set "
                                     "EDGEMED_MAX_ZIP_RATIO to raise the limit if the file is genuine")
                with z.open(info) as f:
                    _header(f, f"{path}:{info.filename}", info.filename[:-4] in allow_text)
            arrays = {}
            for info in infos:
                with z.open(info) as f:
                    arrays[info.filename[:-4]] = np.lib.format.read_array(
                        f, allow_pickle=False, max_header_size=int(limit("npy_header_bytes")))
            return arrays
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)") from exc
    except (OSError, ValueError, EOFError, zipfile.LargeZipFile, NotImplementedError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0][:200]})") from exc
