"""OME-Zarr (OME-NGFF 0.4, zarr format 2) output: the image, its pyramid, the labels group.

Layout of ``OUT/<stem>.ome.zarr`` (spec: https://ngff.openmicroscopy.org/0.4/)::

    .zgroup, .zattrs           "multiscales": the image (axes, datasets 0..L-1)
    0 .. L-1                   the image's levels: (t?, c?, z?, y, x), source dtype
    labels/.zattrs             {"labels": ["segany"]}
    labels/segany/.zattrs      "multiscales" (same axes, same number of levels) and
                               "image-label": {"version": "0.4", "source": {"image": "../../"}}
    labels/segany/0 .. L-1     the labels' levels, unsigned integers, c of size 1 if any

The spec's rules followed here: axes of type time first, then channel, then 2-3 space axes;
one ``scale`` transformation per dataset (pixel size 2**level on y and x, 1 elsewhere),
datasets from the highest resolution down; chunks in nested directories
(``dimension_separator`` "/"); an image-label group has multiscales with as many datasets
as the image.  Level l is level 0 taken every 2**l pixels on y and x (nearest neighbour,
which keeps label ids).  Chunks hold one plane (up to 1024 x 1024 px of it): a task that
writes whole planes never shares a chunk with another task.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NGFF_VERSION = "0.4"
LABELS_NAME = "segany"
CHUNK_SIDE = 1024
MIN_LEVEL_SIDE = 64  # levels are added while the previous level is longer than this
MAX_LEVELS = 8
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def n_levels(plane_shape: tuple[int, int]) -> int:
    """How many levels a (H, W) plane gets: halved while its longest side exceeds 64 px."""
    levels, side = 1, max(plane_shape)
    while side > MIN_LEVEL_SIDE and levels < MAX_LEVELS:
        side = (side + 1) // 2
        levels += 1
    return levels


def downsample(plane: np.ndarray, level: int) -> np.ndarray:
    """Level ``level`` of a (H, W[, C]) plane: every 2**level-th pixel on y and x."""
    step = 2 ** level
    return plane[::step, ::step]


def level_shape(shape: tuple[int, ...], level: int) -> tuple[int, ...]:
    """The array shape of ``level`` for a level-0 ``shape`` (y, x the last two axes)."""
    step = 2 ** level
    return (*shape[:-2], -(-shape[-2] // step), -(-shape[-1] // step))


def axes_metadata(axes: str) -> list[dict]:
    """NGFF axes of lower-case letters in the order t, c, z, y, x (pixel units left out)."""
    return [{"name": a, "type": AXIS_TYPES[a]} for a in axes]


def multiscales(axes: str, levels: int, name: str) -> list[dict]:
    """The ``multiscales`` attribute of an image or label group of ``levels`` levels."""
    datasets = []
    for level in range(levels):
        scale = [float(2 ** level) if a in "yx" else 1.0 for a in axes]
        datasets.append({"path": str(level),
                         "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    return [{"version": NGFF_VERSION, "name": name, "axes": axes_metadata(axes),
             "datasets": datasets, "type": "nearest",
             "metadata": {"method": "every 2**level-th pixel on y and x (nearest)"}}]


def output_axes(leading: str, colour: bool) -> str:
    """The image's axes: ``leading`` (T, Z) with c inserted after t for a colour image."""
    lower = leading.lower()
    if not colour:
        return lower + "yx"
    return ("t" if "t" in lower else "") + "c" + ("z" if "z" in lower else "") + "yx"


def _array_kwargs(chunks):
    import numcodecs

    return dict(chunks=chunks, fill_value=0, chunk_key_encoding={"name": "v2", "separator": "/"},
                compressors=numcodecs.Blosc(cname="zstd", clevel=5,
                                            shuffle=numcodecs.Blosc.BITSHUFFLE))


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*(1 for _ in shape[:-2]), min(shape[-2], CHUNK_SIDE), min(shape[-1], CHUNK_SIDE))


def create_image(path: Path, axes: str, shape: tuple[int, ...], dtype, name: str) -> None:
    """The image group with empty level arrays (``shape``: level 0 in ``axes`` order)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    levels = n_levels(shape[-2:])
    for level in range(levels):
        lshape = level_shape(shape, level)
        root.create_array(str(level), shape=lshape, dtype=dtype, **_array_kwargs(_chunks(lshape)))
    root.attrs["multiscales"] = multiscales(axes, levels, name)


def create_labels(path: Path, axes: str, shape: tuple[int, ...], dtype) -> None:
    """``labels/segany`` of the image at ``path`` (replaced if present): empty levels."""
    import zarr

    root = zarr.open_group(str(path), mode="r+", zarr_format=2)
    labels = root.require_group("labels")
    labels.attrs["labels"] = [LABELS_NAME]
    group = labels.create_group(LABELS_NAME, overwrite=True)
    levels = n_levels(shape[-2:])
    for level in range(levels):
        lshape = level_shape(shape, level)
        group.create_array(str(level), shape=lshape, dtype=dtype, **_array_kwargs(_chunks(lshape)))
    group.attrs["multiscales"] = multiscales(axes, levels, LABELS_NAME)
    group.attrs["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}}


def open_levels(path: Path, labels: bool = False) -> list:
    """The level arrays (0 first) of the image at ``path``, or of its labels, for writing."""
    import zarr

    group = zarr.open_group(str(path / "labels" / LABELS_NAME) if labels else str(path),
                            mode="r+", zarr_format=2)
    count = len(group.attrs["multiscales"][0]["datasets"])
    return [group[str(level)] for level in range(count)]


def write_plane(levels: list, index: tuple, plane: np.ndarray) -> None:
    """Write a level-0 plane and its downsampled copies at ``index`` (the array index of the
    plane: ints for the leading axes and for a labels' c of size 1, ``slice(None)`` for an
    image's c).  ``plane``: (H, W), or (H, W, C) for a colour image (c moved first)."""
    for level, array in enumerate(levels):
        data = downsample(plane, level)
        array[index] = np.moveaxis(data, -1, 0) if data.ndim == 3 else data
