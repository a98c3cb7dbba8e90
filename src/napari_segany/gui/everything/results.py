"""What the Segment Everything widget keeps of its runs, and how the filters select from it.

``results`` holds the unfiltered result of every segmented slice; ``shown`` the filtered
result painted on the result layer.  Moving a filter marks every slice *stale*: the shown
slice is re-selected at once, the others when they are shown or committed (re-selecting
only paints stored masks: the model is never called again).  The selecting and painting
happen in a worker (:mod:`.painting`); ``version`` tells it whether what it prepared still
applies when it comes back.
"""
from __future__ import annotations


class ResultView:
    """Results by slice index, their filtered selection, and the slices to re-select."""

    def __init__(self):
        self.results: dict = {}  # slice index -> EverythingResult of the last run (unfiltered)
        self.shown: dict = {}  # slice index -> filtered EverythingResult on the result layer
        self.stale: set = set()  # slices whose result layer predates the filters
        self.version = 0  # changes whenever a selection being prepared would no longer apply

    def add(self, results: dict) -> None:
        """Keep the results of a run; they are stale until their selection is accepted."""
        self.results.update(results)
        self.stale.update(results)
        self.version += 1

    def accept(self, selected: dict, current: bool = True) -> None:
        """``selected``: slice index -> filtered result (as painted on the result layer);
        ``current``: made with the filters of now (else the slices stay stale)."""
        self.shown.update(selected)
        if current:
            self.stale.difference_update(selected)

    def needs_refresh(self, indices) -> bool:
        return any(i in self.stale for i in indices)

    def invalidate(self) -> None:
        """The filters changed, or the result layer went: every slice is to be re-shown."""
        self.stale = set(self.results)
        self.version += 1

    def forget(self) -> None:
        self.results, self.shown, self.stale = {}, {}, set()
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
        return text + "."
