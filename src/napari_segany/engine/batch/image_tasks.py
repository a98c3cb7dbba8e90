"""The tasks after the planes of an image: linking or tracking, the offsets pass, the table.

Per image, after its plane tasks (:mod:`.plane_tasks`):

1. ``link`` (auto3d, one per Z stack) / ``track`` (one per series): per-plane ids (scratch
   ``local``) -> ids per unit (scratch ``linked``), read and written a plane at a time
   (``workflows.link_slices``; ``track_labels`` holds the series' labels);
2. ``layout`` (one): the offsets of the units (ids unique per image), the labels' dtype
   (``images.io.labels_dtype`` of the largest id), the NGFF labels group with empty levels;
3. ``relabel`` (one per unit; the offsets pass): unit ids + offset into the labels' levels;
4. ``finish`` (one): the image's object rows (plane rows, ids mapped) and, for track, its
   lineage (``<stem>_lineage.csv``: track id, first frame, last frame, parent).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import ngff
from .markers import read_marker, write_marker
from .objects import image_table
from .plan import ImageJob
from .plane_tasks import TaskContext, task


class UnitView:
    """Planes ``planes`` of a scratch array as a (Z, H, W) array, read / written a plane at a
    time (what ``link_slices`` and ``track_labels`` index)."""

    def __init__(self, array, planes):
        self.array, self.planes = array, list(planes)
        self.shape = (len(self.planes), *array.shape[1:])
        self.dtype = np.dtype(str(array.dtype))

    def _k(self, index):
        first = index[0] if isinstance(index, tuple) else index
        return self.planes[int(first)]

    def __getitem__(self, index):
        return np.asarray(self.array[self._k(index)])

    def __setitem__(self, index, value):
        self.array[self._k(index)] = value


def _id_maps(local: UnitView, linked: UnitView) -> dict[str, list]:
    """Per plane ``[[local id, unit id], ...]`` (a relabelling keeps every mask's pixels)."""
    maps = {}
    for z, k in enumerate(local.planes):
        a, b = local[z], linked[z]
        ids, first = np.unique(a.ravel(), return_index=True)
        keep = ids > 0
        maps[str(k)] = np.stack([ids[keep], b.ravel()[first[keep]]], axis=1).tolist()
    return maps


def _unit_result(job: ImageJob, name: str, maps: dict, extra: dict | None = None) -> dict:
    count = max((pair[1] for pairs in maps.values() for pair in pairs), default=0)
    result = {"count": int(count), "maps": maps, **(extra or {})}
    write_marker(job.marker(name), result)
    return {"count": int(count)}


@task("link")
def link_task(ctx: TaskContext, job: ImageJob, u: int, *planes):
    """auto3d: the masks of Z stack ``u`` linked into 3D objects (ids 1..N of the stack)."""
    from ..workflows.slices import link_slices

    done = read_marker(job.marker(f"link-{u}"))
    if done is not None:
        return {"count": done["count"]}
    local = UnitView(job.scratch("local"), job.units[u])
    linked = UnitView(job.scratch("linked"), job.units[u])
    link_slices(local, min_iou=ctx.settings.link_iou, out=linked)
    return _unit_result(job, f"link-{u}", _id_maps(local, linked))


@task("track")
def track_task(ctx: TaskContext, job: ImageJob, *planes):
    """track: the per-frame masks tracked with divisions (ids = track ids 1..N)."""
    from ..workflows.tracking import track_labels

    done = read_marker(job.marker("link-0"))
    if done is not None:
        return {"count": done["count"]}
    s = ctx.settings
    local = UnitView(job.scratch("local"), job.units[0])
    result = track_labels(local, min_iou=s.track_iou, divisions=s.divisions)
    linked = UnitView(job.scratch("linked"), job.units[0])
    for t in range(result.labels.shape[0]):
        linked[t] = result.labels[t]
    return _unit_result(job, "link-0", _id_maps(local, linked),
                        {"lineage": result.lineage().tolist()})


@task("layout")
def layout_task(ctx: TaskContext, job: ImageJob, *units):
    """Offsets of the units and the labels group (its dtype holds the largest id)."""
    from ..images.io import labels_dtype

    done = read_marker(job.marker("layout"))
    if done is not None:
        return done
    counts = [int(unit["count"] if "count" in unit else unit["n"]) for unit in units]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    dtype = str(labels_dtype(int(sum(counts))))
    ngff.create_labels(Path(job.out), job.image_axes, job.image_shape(labels=True), dtype)
    result = {"offsets": offsets, "dtype": dtype, "total": int(sum(counts))}
    write_marker(job.marker("layout"), result)
    return result


@task("relabel")
def relabel_task(ctx: TaskContext, job: ImageJob, u: int, layout: dict):
    """The offsets pass of unit ``u``: its ids + offset, written into every labels level."""
    if read_marker(job.marker(f"relabel-{u}")) is not None:
        return {"u": u}
    source = job.scratch("local" if ctx.settings.task == "everything" else "linked")
    levels = ngff.open_levels(Path(job.out), labels=True)
    offset, dtype = layout["offsets"][u], np.dtype(layout["dtype"])
    for k in job.units[u]:
        ids = np.asarray(source[k])
        final = np.where(ids > 0, ids + np.uint32(offset), 0).astype(dtype)
        ngff.write_plane(levels, job.array_index(k, labels=True), final)
    write_marker(job.marker(f"relabel-{u}"), {"u": u})
    return {"u": u}


@task("finish")
def finish_task(ctx: TaskContext, job: ImageJob, layout: dict, *relabelled):
    """The image's object rows (``objects.csv`` of its state folder) and, for track, its
    lineage; returns ``{"objects": rows, "labels": largest id}``."""
    from ..workflows.features import write_features_csv

    done = read_marker(job.marker("done"))
    if done is not None:
        return done
    planes, maps = {}, {}
    for u, unit in enumerate(job.units):
        offset = layout["offsets"][u]
        unit_maps = _unit_maps(ctx, job, u, unit)
        for k in unit:
            planes[k] = read_marker(job.marker(f"plane-{k}"))["rows"]
            maps[k] = {int(a): int(b) + offset for a, b in unit_maps[str(k)]}
    table = image_table(job.name, planes, maps)
    write_features_csv(table, Path(job.state) / "objects.csv")
    if ctx.settings.task == "track":
        lineage = read_marker(job.marker("link-0"))["lineage"]
        write_features_csv(_lineage_columns(lineage),
                           Path(job.out).parent / f"{job.stem}_lineage.csv")
    result = {"objects": len(table["label"]), "labels": layout["total"]}
    write_marker(job.marker("done"), result)
    return result


def _unit_maps(ctx: TaskContext, job: ImageJob, u: int, unit) -> dict:
    if ctx.settings.task == "everything":  # a unit is a plane: ids as painted
        (k,) = unit
        rows = read_marker(job.marker(f"plane-{k}"))["rows"]
        return {str(k): [[i, i] for i in rows["label"]]}
    return read_marker(job.marker(f"link-{u}"))["maps"]


def _lineage_columns(lineage: list) -> dict:
    rows = np.asarray(lineage, np.int64).reshape(-1, 4)
    return {"track": rows[:, 0], "first_frame": rows[:, 1], "last_frame": rows[:, 2],
            "parent": rows[:, 3]}
