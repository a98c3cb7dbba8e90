"""What a Segment Everything commit writes, prepared in a worker (numpy only).

For each slice: its selection (made again here when the filters moved since it was shown,
:mod:`.selection`), painted with the result layer's ids; the pixels to write (with
``preserve``: those on background as the target reads then); and each pixel's new id as an
*offset* from the first new id, which only the main thread knows when it writes
(:mod:`.commit`).  Every slice's objects get offsets of their own; a linked run's 3D objects
get one offset across slices (the sorted union of their ids).  An object wholly hidden by
existing labels gets none.

The feature rows of the objects written are made here too (``label`` / ``index``: their
offsets; 3D objects: one row each, ``per_object``): the main thread adds the first id and
appends them to the target's ``features``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...engine.workflows.mask_features import per_object
from .selection import Selected, SliceInput, paint, select, slice_table


@dataclass
class SliceWrite:
    """The pixels of one slice to write: ids ``first id + ids``."""

    index: tuple
    rows: np.ndarray
    cols: np.ndarray
    ids: np.ndarray


@dataclass
class CommitPlan:
    writes: list[SliceWrite]
    n: int  # new ids (objects) written
    table: dict = field(default_factory=dict)  # their feature rows, ids as offsets


def prepare_writes(items: list[tuple[SliceInput, Selected | None]], settings, ranges, target,
                   preserve: bool, linked: bool = False) -> CommitPlan:
    """(In a worker.) ``items``: each slice's input and its accepted selection (None: stale,
    selected again with ``settings`` and ``ranges``); ``target``: the Labels' array."""
    slices = []
    for inp, chosen in items:
        chosen = select(inp, settings, ranges) if chosen is None else chosen
        labels = paint(inp, chosen)
        take = labels > 0
        if preserve:
            take &= np.asarray(target[inp.index] if inp.index else target) == 0
        rows, cols = np.nonzero(take)
        values = labels[rows, cols]
        slices.append((inp, chosen, rows, cols, values, np.unique(values)))
    union = np.unique(np.concatenate([np.zeros(0, np.int64)] + [s[-1] for s in slices])
                      ) if linked else None
    writes, tables, offset = [], [], 0
    for inp, chosen, rows, cols, values, visible in slices:
        known = union if linked else visible  # offset: position in known (+ earlier slices)
        writes.append(SliceWrite(inp.index, rows, cols,
                                 offset + np.searchsorted(known, values).astype(np.int64)))
        tables.append(_written_rows(inp, chosen, visible,
                                    offset + np.searchsorted(known, visible)))
        if not linked:
            offset += visible.size
    return CommitPlan(writes, int(union.size) if linked else offset,
                      _joined([t for t in tables if t], linked))


def _written_rows(inp: SliceInput, chosen: Selected, visible: np.ndarray,
                  new: np.ndarray) -> dict | None:
    """The feature rows of a slice's objects written (ids ``visible``), ``label`` ``new``."""
    table = slice_table(inp.index, inp.table, chosen.rows, inp.links)
    if table is None or visible.size == 0:
        return None
    at = np.searchsorted(visible, table["label"]).clip(max=visible.size - 1)
    written = visible[at] == table["label"]
    table = {k: v[written] for k, v in table.items()}
    table["label"] = new[at[written]].astype(np.int64)
    return table


def _joined(tables: list[dict], linked: bool) -> dict:
    if not tables:
        return {}
    joined = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
    if linked:  # one row per 3D object
        joined = per_object(joined)
    return {"index": joined["label"], **joined}


def with_first_id(table: dict, first_id: int) -> dict:
    """``table`` with its offsets (``label``, ``index``) made ids from ``first_id``."""
    if not table:
        return {}
    shifted = {k: np.asarray(v) + first_id for k, v in table.items() if k in ("label", "index")}
    return {**table, **shifted}
