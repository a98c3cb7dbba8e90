"""Reading images and writing label images for the command line (no napari, no Qt).

* in: TIFF (tifffile), PNG / JPEG / BMP (Pillow), NPY (numpy, never unpickling);
* out: label images as TIFF, zlib-compressed, in the smallest unsigned type that holds the
  largest id (uint8, uint16 or uint32: Fiji, napari and QuPath read all three);
* how an array splits into 2D planes (:func:`plane_layout`): (H, W) and (H, W, 3|4) are one
  image, (N, H, W) and (N, H, W, 3|4) are N slices along the first axis.

Arrays are (row, col) = (y, x) with optional leading slice axes and a trailing colour axis.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy",)


def read_image(path) -> np.ndarray:
    """The pixels of an image file as an ndarray (see the module docstring for formats)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        return np.asarray(tifffile.imread(path))
    if suffix in PIL_SUFFIXES:
        from PIL import Image

        with Image.open(path) as image:
            return np.array(image)
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:  # an object array: refuse rather than unpickle
            raise ImageError(f"{path} holds Python objects, not pixels: save a numeric array.") from exc
    raise ImageError(f"{path.name}: unsupported file type {suffix!r}; use one of "
                     f"{', '.join(IMAGE_SUFFIXES)}.")


def list_images(folder) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder).expanduser()
    files = [p for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not files:
        raise ImageError(f"No image in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return files


@dataclass(frozen=True)
class PlaneLayout:
    """How an array is cut into 2D planes: ``leading`` slice axes, then (H, W[, C])."""

    leading: tuple[int, ...]  # () for a single 2D image, (N,) for a stack
    rgb: bool

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.leading)) if self.leading else 1

    def indices(self) -> list[tuple[int, ...]]:
        return [tuple(int(i) for i in idx) for idx in np.ndindex(*self.leading)] if self.leading else [()]


def plane_layout(shape: tuple[int, ...]) -> PlaneLayout:
    """(H, W) or (H, W, 3|4): one image; (N, H, W) or (N, H, W, 3|4): N slices.

    A trailing axis of 3 or 4 is colour (RGB / RGBA).  Raise ImageError for other shapes,
    saying how to fix the file.
    """
    shape = tuple(int(s) for s in shape)
    colour = len(shape) >= 3 and shape[-1] in (3, 4)
    spatial = len(shape) - colour
    if spatial == 2:
        return PlaneLayout((), colour)
    if spatial == 3:
        return PlaneLayout(shape[:1], colour)
    raise ImageError(f"Cannot read an array of shape {shape} as 2D images: expected (H, W), "
                     "(H, W, 3), (N, H, W) or (N, H, W, 3). Split other axes (time, channels) "
                     "into separate files first.")


def labels_dtype(max_id: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ImageError(f"{max_id} labels do not fit in 32 bits.")


def write_labels(path, labels: np.ndarray) -> Path:
    """Write a label image (any leading axes) as a compressed TIFF, atomically: the file
    appears complete or not at all (a cancelled run leaves no half-written output)."""
    import tifffile

    path = Path(path).expanduser()
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ImageError(f"Labels are written as TIFF: give an output ending in .tif, not {path.name}.")
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ImageError("Label ids must be >= 0.")
    data = labels.astype(labels_dtype(int(labels.max()) if labels.size else 0), copy=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tif", dir=path.parent, prefix=f".{path.stem}-")
    os.close(fd)
    try:
        tifffile.imwrite(tmp, data, compression="zlib", photometric="minisblack")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
