"""What the Segment Everything widget keeps of its runs, and how the filters select from it.

``results`` holds the unfiltered result of every segmented slice; ``shown`` the filtered
result painted on the result layer.  Moving a filter marks every slice *stale*: the shown
slice is re-selected at once, the others when they are shown or committed (re-selecting
only paints stored masks: the model is never called again).  The selecting and painting
happen in a worker (:mod:`.painting`, :mod:`.selection`); ``version`` tells it whether what
it prepared still applies when it comes back.

``features`` holds each slice's object table (row i: record i, measured in the worker);
the feature filters (min / max on its columns) select rows of it before the other filters.
``links`` (3D stacks linked into objects) gives each record its 3D id, with which it is
painted and committed.  The result layer's ``features`` are the rows of the masks of the
shown slice, ``label`` (and napari's ``index``) their id on the layer; a commit's rows go
to the target (:mod:`.commit_plan`; 3D objects: one row per object, ``per_object``).
"""
from __future__ import annotations

from .selection import SliceInput, slice_table


class ResultView:
    """Results by slice index, their filtered selection, and the slices to re-select."""

    def __init__(self):
        self.results: dict = {}  # slice index -> EverythingResult of the last run (unfiltered)
        self.shown: dict = {}  # slice index -> filtered EverythingResult on the result layer
        self.stale: set = set()  # slices whose result layer predates the filters
        self.features: dict = {}  # slice index -> table of every record of results[index]
        self.links: dict = {}  # slice index -> 3D ids of the records (linked runs only)
        self.rows: dict = {}  # slice index -> record numbers of shown[index], in its order
        self.version = 0  # changes whenever a selection being prepared would no longer apply
        self.accepted = 0  # counts the selections accepted (the layer's features follow)

    @property
    def linked(self) -> bool:
        return bool(self.links)

    def add(self, results: dict, features=None, links=None) -> None:
        """Keep the results of a run; they are stale until their selection is accepted.
        A linked run replaces every slice's ids; after one, any run drops them."""
        if links or self.links:
            self.invalidate()  # every slice is painted anew with (or without) 3D ids
            self.links = dict(links or {})
        self.results.update(results)
        self.features.update(features or {})
        self.stale.update(results)
        self.version += 1

    def input(self, index) -> SliceInput:
        """What slice ``index``'s selection is made from (for a worker)."""
        return SliceInput(index, self.results[index], self.features.get(index),
                          self.links.get(index))

    def accept(self, selected: dict, current: bool = True) -> None:
        """``selected``: slice index -> :class:`~.selection.Selected` (as painted on the
        result layer); ``current``: made with the filters of now (else the slices stay stale)."""
        for index, chosen in selected.items():
            self.shown[index], self.rows[index] = chosen.shown, chosen.rows
        self.accepted += 1
        if current:
            self.stale.difference_update(selected)

    def table(self, index) -> dict | None:
        """The rows of the shown masks of slice ``index``, ``label`` their id on the layer."""
        return slice_table(index, self.features.get(index), self.rows[index],
                           self.links.get(index))

    def layer_features(self, index) -> dict:
        """The result layer's ``features`` while slice ``index`` is shown: its shown masks
        (napari takes one row per label value; ids repeat across slices), with ``index``."""
        table = self.table(index) if index in self.shown else None
        return {} if table is None else {"index": table["label"], **table}

    def needs_refresh(self, indices) -> bool:
        return any(i in self.stale for i in indices)

    def invalidate(self) -> None:
        """The filters changed, or the result layer went: every slice is to be re-shown."""
        self.stale = set(self.results)
        self.version += 1

    def forget(self) -> None:
        self.results, self.shown, self.stale = {}, {}, set()
        self.features, self.links, self.rows = {}, {}, {}
        self.version += 1

    def found_and_kept(self, indices) -> tuple[int, int]:
        return (sum(len(self.results[i]) for i in indices),
                sum(len(self.shown[i]) for i in indices if i in self.shown))

    def count_text(self, index) -> str:
        """The line under the filters for slice ``index``."""
        if index not in self.results or index not in self.shown:
            return f"No result on this slice ({len(self.results)} slice(s) segmented)."
        kept, found = len(self.shown[index]), len(self.results[index])
        text = f"{kept} objects shown (of {found} found)"
        if len(self.results) > 1:
            text += f" on this slice; {len(self.results)} slices segmented"
        if self.linked:
            text += "; ids are 3D objects"
        return text + "."
