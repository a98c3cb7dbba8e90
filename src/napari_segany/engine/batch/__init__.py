"""Batch and scale-out: folders, plates and large volumes on dask, from a laptop to a cluster.

Inputs (files, folders, globs; TIFF read plane by plane, OME-Zarr at any level, PNG / JPEG /
NPY; axes and channels as :mod:`.axes` says) -> lazily opened images (:mod:`.readers`,
:mod:`.plan`) -> tasks of one plane each, then per image the linking / tracking, the offsets
pass and the object table (:mod:`.plane_tasks`, :mod:`.image_tasks`, :mod:`.graph`) -> run on
a dask scheduler (:mod:`.schedulers`; each worker loads the model once, :mod:`.workers`) ->
``OUT/<stem>.ome.zarr`` with the NGFF labels group ``labels/segany`` (:mod:`.ngff`), written
by the workers, and ``OUT/objects.csv`` (:mod:`.objects`); a marker per finished task
(:mod:`.markers`) makes a rerun skip finished work; the :class:`BatchSummary` lists what
failed.  ``napari_segany.batch`` / ``iter_batch`` and ``napari-segany batch`` run it.
"""
from __future__ import annotations

from .run import batch, iter_batch
from .settings import TASKS, BatchSettings
from .summary import BatchSummary, ImageReport

__all__ = ["TASKS", "BatchSettings", "BatchSummary", "ImageReport", "batch", "iter_batch"]
