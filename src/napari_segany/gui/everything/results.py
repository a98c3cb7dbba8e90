"""What the Segment Everything widget keeps of its runs, and how the filters select from it.

``results`` holds the unfiltered result of every segmented slice; ``shown`` the filtered
result painted on the result layer.  Moving a filter marks every slice *stale*: the shown
slice is re-selected at once, the others when they are shown or committed (re-selecting
only paints stored masks: the model is never called again).

``features`` holds each slice's object table (row i: record i, measured in the worker);
the feature filters (min / max on its columns) select rows of it, vectorised, before the
other filters.  ``links`` (3D stacks linked into objects) gives each record its 3D id, with
which it is painted and committed.  The result layer's ``features`` are the rows of the
masks of the shown slice, ``label`` (and napari's ``index``) their id on the layer; a
commit's rows go to the target (3D objects: one row per object, ``per_object``).
"""
from __future__ import annotations

import numpy as np

from ...engine.everything.result import EverythingResult
from ...engine.workflows.features import filter_objects
from ...engine.workflows.mask_features import per_object
from .layers import show_slice


class ResultView:
    """Results by slice index, their filtered selection, and the slices to re-select."""

    def __init__(self):
        self.results: dict = {}  # slice index -> EverythingResult of the last run (unfiltered)
        self.shown: dict = {}  # slice index -> filtered EverythingResult on the result layer
        self.stale: set = set()  # slices whose result layer predates the filters
        self.features: dict = {}  # slice index -> table of every record of results[index]
        self.links: dict = {}  # slice index -> 3D ids of the records (linked runs only)
        self.rows: dict = {}  # slice index -> record numbers of shown[index], in its order
        self.version = 0  # counts the re-selections (the layer's features follow)

    @property
    def linked(self) -> bool:
        return bool(self.links)

    def add(self, layer, results: dict, settings, features=None, links=None,
            ranges=None) -> tuple[int, int]:
        """Keep new results and paint their selection on ``layer``; (found, kept) masks.
        A linked run replaces every slice's ids; after one, any run drops them."""
        if links or self.links:
            self.invalidate()  # every slice is painted anew with (or without) 3D ids
            self.links = dict(links or {})
        self.results.update(results)
        self.features.update(features or {})
        self.stale.update(results)
        self.refresh(layer, list(results), settings, ranges)
        return (sum(len(r) for r in results.values()),
                sum(len(self.shown[i]) for i in results))

    def refresh(self, layer, indices, settings, ranges=None) -> None:
        """Re-select and paint the stale slices among ``indices``; the layer's features."""
        stale = [i for i in indices if i in self.stale]
        for index in stale:
            result, rows = self._select(index, settings, ranges or {})
            self.shown[index], self.rows[index] = result, rows
            show_slice(layer, index, result, self._ids(index, rows))
            self.stale.discard(index)
        if stale:
            self.version += 1

    def _select(self, index, settings, ranges: dict) -> tuple[EverythingResult, np.ndarray]:
        result = self.results[index]
        table = self.features.get(index)
        if ranges and table is not None:
            ranges = {k: v for k, v in ranges.items() if k in table}
            keep = filter_objects(None, table, paint=False, **ranges).keep
            result = EverythingResult([r for r, k in zip(result.records, keep) if k],
                                      result.image_shape, result.method, result.n_prompts)
        shown = settings.apply(result)
        number = {id(r): k for k, r in enumerate(self.results[index].records)}
        return shown, np.array([number[id(r)] for r in shown.records], np.int64)

    def _ids(self, index, rows: np.ndarray):
        """The layer's id of each shown mask (k + 1 -> ids[k + 1]); None: 1..n."""
        links = self.links.get(index)
        return None if links is None else np.r_[0, links[rows + 1]]

    def painted(self, index) -> np.ndarray:
        """The label image of slice ``index`` as the result layer shows it."""
        plane = self.shown[index].paint()
        ids = self._ids(index, self.rows[index])
        return plane if ids is None else ids[plane]

    def table(self, index) -> dict | None:
        """The rows of the shown masks of slice ``index``, ``label`` their id on the layer."""
        features = self.features.get(index)
        if features is None:
            return None
        rows = self.rows[index]
        ids = self._ids(index, rows)
        table = {key: np.asarray(column)[rows] for key, column in features.items()}
        table["label"] = np.arange(1, rows.size + 1) if ids is None else ids[1:]
        if index:
            slice_columns = {"plane": index[0]} if len(index) == 1 else {
                f"axis_{k}": v for k, v in enumerate(index)}
            table = {**{k: np.full(rows.size, v, np.int64) for k, v in slice_columns.items()},
                     **table}
        return table

    def layer_features(self, index) -> dict:
        """The result layer's ``features`` while slice ``index`` is shown: its shown masks
        (napari takes one row per label value; ids repeat across slices), with ``index``."""
        table = self.table(index) if index in self.shown else None
        return {} if table is None else {"index": table["label"], **table}

    def committed_table(self, assigned: dict) -> dict:
        """The rows of the masks a commit wrote, ``label`` / ``index`` their new ids
        (``assigned``: slice index -> (ids on the layer, new ids), from ``commit_slices``)."""
        tables = []
        for index, (ids, new) in sorted(assigned.items()):
            table = self.table(index)
            if table is None or ids.size == 0:
                continue
            at = np.searchsorted(ids, table["label"]).clip(max=ids.size - 1)
            written = ids[at] == table["label"]
            table = {k: v[written] for k, v in table.items()}
            table["label"] = new[at[written]]
            tables.append(table)
        if not tables:
            return {}
        joined = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
        if self.linked:  # one row per 3D object
            joined = per_object(joined)
        return {"index": joined["label"], **joined}

    def needs_refresh(self, indices) -> bool:
        return any(i in self.stale for i in indices)

    def invalidate(self) -> None:
        """The filters changed, or the result layer went: every slice is to be re-shown."""
        self.stale = set(self.results)

    def forget(self) -> None:
        self.results, self.shown, self.stale = {}, {}, set()
        self.features, self.links, self.rows = {}, {}, {}

    def count_text(self, index) -> str:
        """The line under the filters for slice ``index``."""
        if index not in self.results:
            return f"No result on this slice ({len(self.results)} slice(s) segmented)."
        kept, found = len(self.shown[index]), len(self.results[index])
        text = f"{kept} objects shown (of {found} found)"
        if len(self.results) > 1:
            text += f" on this slice; {len(self.results)} slices segmented"
        if self.linked:
            text += "; ids are 3D objects"
        return text + "."
