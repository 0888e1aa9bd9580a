"""File readers, registered once: WFDB records and folders, EDF, `.npy`/`.npz`, CSV and images.

`find_reader(path)` names the reader for a path, `read_recording` and `read_windows` read through it, and
`list_items` lists a folder's items for batch scoring. Training, `run`, `score`, `evaluate` and the monitor all ask
here; see `base` for the protocol and how to add a format.
"""

from edgemed.core.readers.arrays import ArrayReader
from edgemed.core.readers.base import (
    RECORDING,
    WINDOWS,
    RawRecording,
    Reader,
    Windows,
    find_reader,
    list_items,
    read_recording,
    read_windows,
    readers,
    register,
)
from edgemed.core.readers.csv_files import CsvReader
from edgemed.core.readers.edf import EdfReader
from edgemed.core.readers.images import ImageReader
from edgemed.core.readers.wfdb import WfdbReader

for _reader in (WfdbReader(), EdfReader(), ArrayReader(), CsvReader(), ImageReader()):
    register(_reader)

__all__ = ["RECORDING", "WINDOWS", "RawRecording", "Reader", "Windows", "find_reader", "list_items", "read_recording",
           "read_windows", "readers", "register"]
