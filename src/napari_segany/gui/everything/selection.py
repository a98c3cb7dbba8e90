"""One slice's selection from its stored masks, as the workers compute it (numpy only).

A slice's unfiltered result, its feature table (row i: record i, measured in the run's
worker) and its 3D ids (linked runs) go in (:class:`SliceInput`).  The feature ranges
(min / max on the table's columns) select rows first, vectorised, then the
``FilterSettings``; out come the kept masks, their record numbers and, when painted, the
label image with the ids the result layer shows: 1..n, or each mask's 3D object id.

Everything here runs in workers (:mod:`.painting`, :mod:`.commit_plan`): the main thread
only copies what it returns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...engine.everything.result import EverythingResult, labels_dtype
from ...engine.workflows.features import filter_objects


@dataclass(frozen=True)
class SliceInput:
    """What a slice's selection is made from."""

    index: tuple
    result: EverythingResult  # unfiltered
    table: dict | None = None  # row i: record i of ``result``
    links: np.ndarray | None = None  # the 3D id of record i at [i + 1] (linked runs)


@dataclass
class Selected:
    """A slice's selection: the kept masks, their record numbers, their label image."""

    shown: EverythingResult
    rows: np.ndarray
    labels: np.ndarray | None = None  # as the result layer shows it (None: not painted)


def select(inp: SliceInput, settings, ranges: dict | None = None) -> Selected:
    """The masks of ``inp`` kept by the feature ``ranges`` and ``settings`` (not painted)."""
    result, table = inp.result, inp.table
    ranges = {k: v for k, v in (ranges or {}).items() if table is not None and k in table}
    if ranges:
        keep = filter_objects(None, table, paint=False, **ranges).keep
        result = EverythingResult([r for r, k in zip(result.records, keep) if k],
                                  result.image_shape, result.method, result.n_prompts)
    shown = settings.apply(result)
    number = {id(r): k for k, r in enumerate(inp.result.records)}
    return Selected(shown, np.array([number[id(r)] for r in shown.records], np.int64))


def layer_ids(links: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The result layer's id of each shown mask (painted k + 1 -> ids[k + 1]); None: 1..n."""
    return None if links is None else np.r_[0, links[rows + 1]]


def paint(inp: SliceInput, selected: Selected) -> np.ndarray:
    """The label image of a selection with the result layer's ids (uint16 when they fit)."""
    plane = selected.shown.paint()
    ids = layer_ids(inp.links, selected.rows)
    if ids is None:
        return plane
    return ids[plane].astype(labels_dtype(int(ids.max(initial=0))))


def select_and_paint(inp: SliceInput, settings, ranges: dict | None = None) -> Selected:
    selected = select(inp, settings, ranges)
    selected.labels = paint(inp, selected)
    return selected


def slice_table(index: tuple, table: dict | None, rows: np.ndarray,
                links: np.ndarray | None) -> dict | None:
    """The rows of a slice's shown masks (record numbers ``rows``), ``label`` their id on the
    result layer; stacks: the slice's position as a ``plane`` (or ``axis_k``) column."""
    if table is None:
        return None
    ids = layer_ids(links, rows)
    out = {key: np.asarray(column)[rows] for key, column in table.items()}
    out["label"] = np.arange(1, rows.size + 1) if ids is None else ids[1:]
    if index:
        where = {"plane": index[0]} if len(index) == 1 else {
            f"axis_{k}": v for k, v in enumerate(index)}
        out = {**{k: np.full(rows.size, v, np.int64) for k, v in where.items()}, **out}
    return out
