"""What the Segment Everything widget keeps of its runs, and how the filters select from it.

``results`` holds the unfiltered result of every segmented slice; ``shown`` the filtered
result painted on the result layer.  Moving a filter marks every slice *stale*: the shown
slice is re-selected at once, the others when they are shown or committed (re-selecting
only paints stored masks: the model is never called again).
"""
from __future__ import annotations

from .layers import show_slice


class ResultView:
    """Results by slice index, their filtered selection, and the slices to re-select."""

    def __init__(self):
        self.results: dict = {}  # slice index -> EverythingResult of the last run (unfiltered)
        self.shown: dict = {}  # slice index -> filtered EverythingResult on the result layer
        self.stale: set = set()  # slices whose result layer predates the filters

    def add(self, layer, results: dict, settings) -> tuple[int, int]:
        """Keep new results and paint their selection on ``layer``; (found, kept) masks."""
        self.results.update(results)
        self.stale.update(results)
        self.refresh(layer, list(results), settings)
        return (sum(len(r) for r in results.values()),
                sum(len(self.shown[i]) for i in results))

    def refresh(self, layer, indices, settings) -> None:
        """Re-select and paint the stale slices among ``indices``."""
        for index in [i for i in indices if i in self.stale]:
            self.shown[index] = settings.apply(self.results[index])
            show_slice(layer, index, self.shown[index])
            self.stale.discard(index)

    def needs_refresh(self, indices) -> bool:
        return any(i in self.stale for i in indices)

    def invalidate(self) -> None:
        """The filters changed, or the result layer went: every slice is to be re-shown."""
        self.stale = set(self.results)

    def forget(self) -> None:
        self.results, self.shown, self.stale = {}, {}, set()

    def count_text(self, index) -> str:
        """The line under the filters for slice ``index``."""
        if index not in self.results:
            return f"No result on this slice ({len(self.results)} slice(s) segmented)."
        kept, found = len(self.shown[index]), len(self.results[index])
        text = f"{kept} objects shown (of {found} found)"
        if len(self.results) > 1:
            text += f" on this slice; {len(self.results)} slices segmented"
        return text + "."
