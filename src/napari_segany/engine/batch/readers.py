"""Images opened lazily: only the planes a task needs are read.

:func:`open_source` returns a :class:`LazyImage`: ``shape``, ``dtype``, ``axes`` (the file's
own axis letters when it says them, e.g. an OME-Zarr's ``TCZYX``; else None) and
``image[index]`` reading one region (numpy indexing on the source array).

* TIFF: ``tifffile.memmap`` when the pixels are stored uncompressed and contiguous (no copy
  until a plane is touched), else tifffile's zarr view of the first series (``aszarr``),
  which decodes only the pages / tiles a plane covers; ``level`` picks a pyramid level;
* OME-Zarr (a folder): the ``multiscales`` dataset ``level`` (0 = full resolution), its axes
  from the metadata; a bare zarr array is read as it is;
* NPY: ``numpy.load(mmap_mode="r")`` (never unpickling); PNG / JPEG / BMP: decoded whole
  (they are small 2D images) by ``images.io.read_image``.

Errors are :class:`ImageError` naming the file and what to do.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..images.io import NPY_MAGIC, PIL_SUFFIXES, TIFF_SUFFIXES, check_pixels, read_image, undecodable
from .sources import is_zarr

DECODE_ERRORS = (ValueError, KeyError, EOFError, SyntaxError, IndexError, TypeError)


class LazyImage:
    """A source array read region by region.  ``array`` supports numpy basic indexing."""

    def __init__(self, path: Path, array, axes: str | None = None, closer=None):
        self.path = path
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(str(array.dtype)) if not isinstance(array.dtype, np.dtype) \
            else array.dtype
        self.axes = axes
        self._closer = closer
        self._lock = threading.Lock()  # one reader per file handle at a time (threads)

    def __getitem__(self, index) -> np.ndarray:
        try:
            with self._lock:
                return np.asarray(self.array[index])
        except DECODE_ERRORS + (OSError,) as exc:
            raise ImageError(undecodable(self.path, self.path.suffix.lower(), exc)) from None

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def open_source(path, level: int = 0) -> LazyImage:
    """Open one input lazily (see the module docstring); ``level`` for pyramids."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No image at {path}.")
    suffix = path.suffix.lower()
    try:
        if is_zarr(path):
            image = _open_zarr(path, level)
        elif suffix in TIFF_SUFFIXES:
            image = _open_tiff(path, level)
        elif suffix == ".npy":
            image = _open_npy(path)
        elif suffix in PIL_SUFFIXES:
            image = LazyImage(path, read_image(path))
        else:
            raise ImageError(f"{path.name}: unsupported input; use TIFF, PNG, JPEG, BMP, NPY files "
                             "or OME-Zarr folders.")
    except ImageError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise ImageError(f"Cannot read {path.name}: {exc.strerror}.") from None
        raise ImageError(undecodable(path, suffix, exc)) from None
    except DECODE_ERRORS as exc:
        raise ImageError(undecodable(path, suffix, exc)) from None
    check_pixels(image.array, path.name)
    return image


def _open_tiff(path: Path, level: int) -> LazyImage:
    import tifffile
    import zarr

    if level == 0:
        try:
            return LazyImage(path, tifffile.memmap(path, mode="r"))
        except (ValueError, TypeError):  # compressed, tiled or scattered: read through zarr
            pass
    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        levels = len(series.levels)
        if not 0 <= level < levels:
            raise ImageError(f"{path.name} has {levels} resolution level(s): choose --level "
                             f"0..{levels - 1}.")
        store = series.aszarr(level=level)
        return LazyImage(path, zarr.open_array(store, mode="r"), closer=tif.close)
    except BaseException:
        tif.close()
        raise


def _open_npy(path: Path) -> LazyImage:
    with open(path, "rb") as fh:
        if fh.read(6) != NPY_MAGIC:
            raise ImageError(f"{path.name} is not a NumPy .npy file (save arrays with numpy.save).")
    try:
        return LazyImage(path, np.load(path, mmap_mode="r", allow_pickle=False))
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise ImageError(f"{path.name} holds Python objects, not pixels: save a numeric "
                             "array.") from None
        raise


def _open_zarr(path: Path, level: int) -> LazyImage:
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return LazyImage(path, node)
    multiscales = _multiscales(node.attrs)
    if not multiscales:
        raise ImageError(f"{path.name} is a zarr group without OME-Zarr 'multiscales' metadata: "
                         "give the folder of an OME-Zarr image (or of one zarr array).")
    datasets = multiscales[0].get("datasets", [])
    if not 0 <= level < len(datasets):
        raise ImageError(f"{path.name} has {len(datasets)} resolution level(s): choose --level "
                         f"0..{len(datasets) - 1}.")
    axes = multiscales[0].get("axes")
    letters = "".join(_axis_name(a)[0].upper() for a in axes) if axes else None
    return LazyImage(path, node[datasets[level]["path"]], letters)


def _multiscales(attrs) -> list:
    """NGFF 0.4 keeps ``multiscales`` in the group's attributes, 0.5 under ``ome``."""
    attrs = dict(attrs)
    return attrs.get("multiscales") or dict(attrs.get("ome", {})).get("multiscales") or []


def _axis_name(axis) -> str:
    return axis["name"] if isinstance(axis, dict) else str(axis)
