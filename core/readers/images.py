"""Reading images for training and the runtime alike (numpy, and Pillow from the `images` extra).

An image becomes float32 [channels, height, width] in 0..1, converted to the asked colour mode, and resized with
Pillow's antialiased bilinear filter to the given (height, width) when one is asked (the model's resolution, which
its graph also resizes to): one function, so training and the bedside see the same pixels. Files that are not
readable PNG or JPEG images are named in the error; decompression bombs are refused (`image_megapixels` limit).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgemed.core.errors import DataError, LimitError
from edgemed.core.limits import check_file_size, limit
from edgemed.core.readers.base import Reader, Windows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise DataError("reading images needs Pillow: pip install 'edgemed[images]'") from exc
    return Image


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path, channels: int = 3, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image as float32 [channels, height, width] in 0..1 (resized to `size` = (height, width) if given)."""
    Image = _pillow()
    if channels not in MODES:
        raise DataError(f"images have 1 or 3 channels, not {channels}")
    check_file_size(path)
    Image.MAX_IMAGE_PIXELS = int(limit("image_megapixels") * 1e6)
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the size is refused below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.format not in ("PNG", "JPEG"):
                raise DataError(f"{path}: a {img.format} image; edgemed reads PNG and JPEG")
            # Pillow only warns between 1x and 2x its pixel limit: the header's size is checked here, before a
            # pixel is decoded.
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{img.width}x{img.height}")
            img = img.convert(MODES[channels])
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except Image.DecompressionBombError as exc:
        raise LimitError(f"{path}: the image has more pixels than the limit of {limit('image_megapixels'):g} "
                         "megapixels; set EDGEMED_MAX_IMAGE_MEGAPIXELS to raise it") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({str(exc).splitlines()[0][:120]})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy()


def list_image_folder(folder: Path) -> tuple[list[tuple[Path, str]], tuple[str, ...]]:
    """(file, class) pairs of an ImageFolder (one sub-folder per class, sorted) and the class names. Any file in a
    class folder that is not a PNG or JPEG is refused, named."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class sub-folders; an image folder holds one sub-folder per class")
    items, strays = [], []
    for name in classes:
        for path in sorted((folder / name).iterdir()):
            if path.name.startswith("."):
                continue
            (items.append((path, name)) if is_image(path) else strays.append(path))
    if strays:
        shown = ", ".join(str(p) for p in strays[:5]) + (" ..." if len(strays) > 5 else "")
        raise DataError(f"{folder}: {len(strays)} file(s) are not PNG or JPEG images: {shown}; remove them")
    if not items:
        raise DataError(f"{folder}: the class folders hold no images")
    return items, tuple(classes)


def read_images(paths: list[Path], channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """Images stacked as [n, channels, height, width]; without `size` they must all share one size."""
    arrays = [read_image(p, channels, size) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes {sorted(shapes)[:3]}; give an image size to resize them to")
    return np.stack(arrays)


class ImageReader(Reader):
    """One PNG or JPEG, a folder of them, or an ImageFolder (class sub-folders give the labels; a file's group is
    the part of its name before the first underscore, the common `PATIENT_eye.jpeg` convention)."""

    name = "images"
    description = "a PNG or JPEG image, or a folder of them (one sub-folder per class)"
    suffixes = IMAGE_SUFFIXES
    limits = ("input_mb", "image_megapixels")
    archive_items = IMAGE_SUFFIXES

    def sniff(self, path: Path) -> bool:
        return is_image(path) or path.is_dir()

    def read_windows(self, path: Path, channels: int = 3, size: tuple[int, int] | None = None,
                     **options: Any) -> Windows:
        if path.is_file():
            return Windows(read_images([path], channels, size), f"image {path.name}", ids=[path.name])
        labels, names = None, None
        if any(p.is_dir() for p in path.iterdir()):
            items, names = list_image_folder(path)
            files, labels = [p for p, _ in items], np.array([c for _, c in items])
        else:
            files = sorted(p for p in path.iterdir() if is_image(p))
            strays = sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and not is_image(p))
            if strays:
                raise DataError(f"{path}: not PNG or JPEG images: {', '.join(strays[:5])}; remove them")
            if not files:
                raise DataError(f"{path}: no PNG or JPEG images")
        return Windows(read_images(files, channels, size), f"{path.name}: {len(files)} images", y=labels,
                       label_names=names, groups=np.array([p.stem.split("_")[0] for p in files]),
                       ids=[str(p.relative_to(path)) for p in files], layout="batch,channel,height,width",
                       sha256=_folder_digest(path, files))


def _folder_digest(folder: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(str(path.relative_to(folder)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
