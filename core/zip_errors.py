"""What Python's zipfile raises on a damaged or crafted archive, beyond BadZipFile: a name flagged UTF-8 that is not
(UnicodeDecodeError, a ValueError), a truncated member (EOFError), a corrupt deflate stream (zlib.error), an unknown
compression (NotImplementedError), read errors (OSError). Readers catch all of them and refuse the file by name."""

from __future__ import annotations

import zipfile
import zlib

ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
              zlib.error)
