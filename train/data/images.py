"""Image folders in the torchvision ImageFolder convention: one sub-folder per class, PNG or JPEG files.

Images are read and resized to `image_size` pixels square by the image reader (`edgemed.core.readers.images`), as
the runtime reads them.
Groups (for patient-wise splits) follow the common `PATIENT_anything.ext` naming (e.g. `10_left.jpeg`): the
part of the file name before the first underscore; a file without one is its own group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.readers.images import ImageReader
from edgemed.core.spec import Preprocessing, Window
from edgemed.core.spec.data import DataSpec
from edgemed.train.data.dataset import Dataset

DEFAULT_IMAGE_SIZE = 64


def load_image_folder(folder: Path | str, image_size: int = DEFAULT_IMAGE_SIZE, channels: int = 3) -> Dataset:
    folder = Path(folder)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise DataError(f"`image_size` must be 8 to 1024 pixels, not {image_size!r}")
    if not any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        raise DataError(f"{folder}: no class sub-folders; an image folder holds one sub-folder per class")
    win = ImageReader().read_windows(folder, channels=channels, size=(image_size, image_size))
    classes = tuple(win.label_names)
    index = {c: i for i, c in enumerate(classes)}
    spec = DataSpec(labels=classes, layout=win.layout,
                    channel_names=("red", "green", "blue") if channels == 3 else ("intensity",),
                    preprocessing=Preprocessing(units="intensity 0-1", window=Window("image"),
                                                resize=(image_size, image_size)))
    return Dataset(X=win.X, y=np.array([index[str(c)] for c in win.y]), groups=win.groups,
                   source=f"images:{folder.resolve()}", sha256=win.sha256, spec=spec)
