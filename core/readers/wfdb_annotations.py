"""MIT-format annotation files (`record.atr`): beat and rhythm annotations, read with numpy alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.limits import check_file_size
from edgemed.core.readers.wfdb_header import local_file

# MIT annotation codes (anntyp) to symbols, as in the WFDB library's ecgcodes.
SYMBOLS = {0: " ", 1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E", 11: "j", 12: "/",
           13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: '"', 23: "=", 24: "p", 25: "B", 26: "^",
           27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[", 33: "]", 34: "e", 35: "n", 36: "@", 37: "x", 38: "f",
           39: "(", 40: ")", 41: "r"}
SKIP, NUM, SUB, CHN, AUX = 59, 60, 61, 62, 63


@dataclass
class Annotations:
    sample: np.ndarray  # int64
    symbol: list[str]
    aux: list[str]
    chan: np.ndarray
    num: np.ndarray
    sub: np.ndarray


def read_annotations(base: Path | str, extension: str = "atr") -> Annotations:
    """MIT-format annotations (`record.atr`): sample, symbol, aux note (rhythm changes), chan, num, sub."""
    base = Path(base)
    path = base.with_name(f"{base.name}.{extension}")
    if not path.is_file():
        raise DataError(f"record {base.name}: no annotation file {path}")
    local_file(path, f"record {base.name}")
    check_file_size(path)
    data = path.read_bytes()
    words = np.frombuffer(data[: len(data) // 2 * 2], "<u2")
    samples, symbols, aux, chan, num, sub = [], [], [], [], [], []
    t, pos, cur_chan, cur_num = 0, 0, 0, 0
    while pos < len(words):
        w = int(words[pos])
        code, value = w >> 10, w & 0x3FF
        pos += 1
        if code == 0 and value == 0:
            break
        if code == SKIP:
            if pos + 2 > len(words):
                raise DataError(f"{path}: truncated annotation file")
            skip = (int(words[pos]) << 16) | int(words[pos + 1])
            t += skip - 2**32 if skip >= 2**31 else skip
            pos += 2
        elif code in (NUM, SUB, CHN):
            if not samples:
                raise DataError(f"{path}: a modifier precedes the first annotation")
            signed = value - 1024 if value > 511 else value  # num and subtyp are signed 10-bit fields
            if code == NUM:
                cur_num = num[-1] = signed
            elif code == SUB:
                sub[-1] = signed
            else:
                cur_chan = chan[-1] = value
        elif code == AUX:
            nbytes = value
            start = 2 * pos
            if start + nbytes > len(data) or not samples:
                raise DataError(f"{path}: malformed aux note")
            aux[-1] = data[start : start + nbytes].decode("latin-1").rstrip("\x00")
            pos += (nbytes + 1) // 2
        else:
            t += value
            samples.append(t)
            symbols.append(SYMBOLS.get(code, "?"))
            aux.append("")
            chan.append(cur_chan)
            num.append(cur_num)
            sub.append(0)
    return Annotations(np.asarray(samples, np.int64), symbols, aux, np.asarray(chan), np.asarray(num),
                       np.asarray(sub))
