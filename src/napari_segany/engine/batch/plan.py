"""One input image of a batch: where its pieces go, which planes form a numbering unit.

:func:`plan_image` opens the input lazily (header only), decides its planes
(:func:`.axes.plane_axes`) and prepares its outputs once: the OME-Zarr image group with empty
levels (segmenting tasks) and the scratch arrays of per-plane ids, under
``OUT/.segany-batch/<stem>/``.  When the input changed since a previous run (size or
modification time), its state is discarded and it starts again.

Units: the planes whose ids are numbered together before the offsets pass: one plane
(``everything``), one Z stack per time point (``auto3d``), the whole series (``track``).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageError
from . import ngff
from .axes import Layout, plane_axes
from .markers import STATE_DIR, read_marker, write_marker
from .readers import open_source
from .sources import stem_of

SCRATCH_CHUNK = 1024


@dataclass(frozen=True)
class ImageJob:
    """One input: ``source`` path, output ``stem``, ``out`` (the .ome.zarr, or the embedding
    store for ``embed``), ``state`` (its markers and scratch arrays), the plane ``layout``,
    the source ``dtype`` and the numbering ``units`` (lists of plane numbers)."""

    source: str
    stem: str
    out: str
    state: str
    layout: Layout
    dtype: str
    units: tuple[tuple[int, ...], ...]
    level: int = 0

    def marker(self, name: str) -> Path:
        return Path(self.state) / f"{name}.json"

    @property
    def name(self) -> str:
        return Path(self.source).name

    @property
    def image_axes(self) -> str:
        return ngff.output_axes(self.layout.leading, self.layout.colour is not None)

    def image_shape(self, labels: bool = False) -> tuple[int, ...]:
        """Level-0 shape of the image (or of its labels: c of size 1)."""
        sizes = dict(zip(self.layout.leading.lower(), self.layout.leading_shape))
        sizes["c"] = 1 if labels else self.layout.n_colours
        sizes["y"], sizes["x"] = self.layout.plane_shape
        return tuple(sizes[a] for a in self.image_axes)

    def array_index(self, k: int, labels: bool = False) -> tuple:
        """Index of plane ``k`` in the image (or labels) arrays."""
        at = dict(zip(self.layout.leading.lower(), self.layout.plane_index(k)))
        at["c"] = 0 if labels else slice(None)
        return tuple(at.get(a, slice(None)) for a in self.image_axes)

    def scratch(self, name: str, mode: str = "r+"):
        """A scratch array (n_planes, H, W) uint32: ``local`` (per-plane ids) or ``linked``."""
        import zarr

        return zarr.open_array(str(Path(self.state) / f"{name}.zarr"), mode=mode)


def plan_image(path: Path, out_dir: Path, settings, prepare: bool = True) -> ImageJob:
    """Open ``path`` lazily and (``prepare``) its outputs (see the module docstring)."""
    image = open_source(path, settings.level)
    try:
        layout = plane_axes(image.shape, settings.axes or image.axes, settings.channel,
                            settings.task)
        dtype = str(image.dtype)
    finally:
        image.close()
    if min(layout.plane_shape) < 2:
        raise ImageError(f"{path.name}: planes of {layout.plane_shape[0]}x"
                         f"{layout.plane_shape[1]} pixels: need at least 2x2.")
    stem = stem_of(path)
    state = out_dir / STATE_DIR / stem
    out = out_dir / ("embeddings" if settings.task == "embed" else f"{stem}.ome.zarr")
    job = ImageJob(str(path), stem, str(out), str(state), layout, dtype,
                   numbering_units(layout, settings.task), settings.level)
    if prepare:
        _start(job, path, settings.task)
    return job


def numbering_units(layout: Layout, task: str) -> tuple[tuple[int, ...], ...]:
    n = layout.n_planes
    if task == "track":
        sizes = dict(zip(layout.leading, layout.leading_shape))
        if "T" not in sizes or sizes.get("Z", 1) > 1:
            raise ImageError(f"track needs a (T, Y, X) series; this input has axes "
                             f"{layout.source_axes}: give --axes with a T axis (e.g. TYX), or "
                             "use auto3d for Z stacks.")
        return (tuple(range(n)),)
    if task == "auto3d" and "Z" in layout.leading:
        depth = layout.leading_shape[layout.leading.index("Z")]  # Z is last: stacks contiguous
        return tuple(tuple(range(s, s + depth)) for s in range(0, n, depth))
    return tuple((k,) for k in range(n))


def _start(job: ImageJob, path: Path, task: str) -> None:
    """Create the outputs of a new (or changed) input; keep those of one being resumed."""
    identity = _identity(path)
    state = Path(job.state)
    recorded = read_marker(job.marker("source"))
    if recorded is not None and recorded == identity:
        return
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    if task != "embed":
        ngff.create_image(Path(job.out), job.image_axes, job.image_shape(), job.dtype, job.stem)
        for name in ("local", "linked") if task in ("auto3d", "track") else ("local",):
            _create_scratch(job, name)
    write_marker(job.marker("source"), identity)


def _create_scratch(job: ImageJob, name: str) -> None:
    import zarr

    h, w = job.layout.plane_shape
    zarr.open_array(str(Path(job.state) / f"{name}.zarr"), mode="w",
                    shape=(job.layout.n_planes, h, w), dtype="uint32", fill_value=0,
                    chunks=(1, min(h, SCRATCH_CHUNK), min(w, SCRATCH_CHUNK)))


def _identity(path: Path) -> dict:
    """What tells that an input is the same file as in the run being resumed."""
    stat = os.stat(path)
    size = stat.st_size if path.is_file() else None
    return {"path": str(path), "size": size, "mtime_ns": stat.st_mtime_ns}


class PlaneView:
    """An input as (*leading, H, W[, C]) planes for the per-file contrast rules
    (``images.contrast``): ``view[index]`` reads the plane at a leading index."""

    def __init__(self, image, layout: Layout):
        self.image, self.layout = image, layout
        colour = (layout.n_colours,) if layout.colour else ()
        self.shape = (*layout.leading_shape, *layout.plane_shape, *colour)
        self.dtype = image.dtype

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        k = int(np.ravel_multi_index(index, self.layout.leading_shape)) if index else 0
        return self.layout.read_plane(self.image, k)
