"""Image folders in the torchvision ImageFolder convention: one sub-folder per class, PNG or JPEG files.

Images are read and resized to `image_size` pixels square with `edgemed.core.images` (as the runtime reads them).
Groups (for patient-wise splits) follow the common `PATIENT_anything.ext` naming (e.g. `10_left.jpeg`): the
part of the file name before the first underscore; a file without one is its own group.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgemed.core.errors import DataError
from edgemed.core.images import list_image_folder, read_images
from edgemed.core.spec import DataSpec, Preprocessing, Window
from edgemed.train.data.dataset import Dataset

DEFAULT_IMAGE_SIZE = 64


def load_image_folder(folder: Path | str, image_size: int = DEFAULT_IMAGE_SIZE, channels: int = 3) -> Dataset:
    folder = Path(folder)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise DataError(f"--image-size must be 8 to 1024 pixels, not {image_size!r}")
    items, classes = list_image_folder(folder)
    X = read_images([p for p, _ in items], channels, (image_size, image_size))
    index = {c: i for i, c in enumerate(classes)}
    h = hashlib.sha256()
    for path, _ in items:
        h.update(str(path.relative_to(folder)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    spec = DataSpec(labels=classes, layout="batch,channel,height,width",
                    channel_names=("red", "green", "blue") if channels == 3 else ("intensity",),
                    preprocessing=Preprocessing(units="intensity 0-1", window=Window("image"),
                                                resize=(image_size, image_size)))
    return Dataset(X=X, y=np.array([index[c] for _, c in items]),
                   groups=np.array([p.stem.split("_")[0] for p, _ in items]), source=f"images:{folder.resolve()}",
                   sha256=h.hexdigest(), spec=spec)
