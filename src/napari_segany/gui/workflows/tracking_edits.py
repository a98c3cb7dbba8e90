"""The tracks shown by the Tracking dock, and the user's corrections to them.

:class:`TrackEditor` holds a tracking result as two layers: the relabelled Labels layer (one
id per track; its data *is* the result's labels) and a Tracks layer (napari's track data and
lineage graph).  The engine's corrections (``merge_tracks``, ``split_track``,
``set_parent``) decide whether a correction is valid and what the tracks and graph become;
they run on the tracks alone (a one-pixel stand-in for the labels: instant, whatever the
movie's size).  The pixels that change id are then found in a worker and written by the
dock in steps as one undo step (``JobPanel.write``), and the Tracks layer follows.
``undo()`` takes back the last correction: the Labels layer's last edit and the tracks and
graph before it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...engine.progress import Progress
from ...engine.workflows.tracks import TrackingResult, merge_tracks, set_parent, split_track
from .common import replace_labels


@dataclass(frozen=True)
class Relabel:
    """Pixels of track ``old`` on ``frames`` get id ``new``."""

    frames: tuple
    old: int
    new: int


@dataclass(frozen=True)
class Correction:
    """What a correction changes: the new result (tracks and graph; labels a stand-in),
    the relabelling of pixels it needs (None: the graph only) and a sentence for the user."""

    result: TrackingResult
    relabel: Relabel | None
    text: str


class TrackEditor:
    """A tracking result in the viewer: ``labels_layer`` + ``tracks_layer``, corrected in step."""

    def __init__(self, labels_layer, tracks_layer, result: TrackingResult):
        self.labels_layer, self.tracks_layer = labels_layer, tracks_layer
        self.tracks, self.graph = result.tracks, dict(result.graph)
        self.history: list[tuple[np.ndarray, dict, bool]] = []  # before each correction

    @property
    def result(self) -> TrackingResult:
        """The result as shown: the Labels layer's data, the tracks and the graph."""
        return TrackingResult(self.labels_layer.data, self.tracks, self.graph)

    def alive_in(self, viewer) -> bool:
        return self.labels_layer in viewer.layers and self.tracks_layer in viewer.layers

    # --- corrections: checked at once by the engine (SegAnyError says why not) -------------
    def merge(self, a: int, b: int) -> Correction:
        new = merge_tracks(self._stand_in(), a, b)
        kept = [i for i in (int(a), int(b)) if np.any(new.tracks[:, 0] == i)][0]
        gone = int(b) if kept == int(a) else int(a)
        frames = tuple(int(t) for t in self._frames(gone))
        return Correction(new, Relabel(frames, gone, kept), f"Tracks {a} and {b} merged into {kept}.")

    def split(self, track: int, t: int) -> Correction:
        new = split_track(self._stand_in(), track, t)
        new_id = int(new.tracks[:, 0].max())
        frames = tuple(int(f) for f in new.frames(new_id))
        return Correction(new, Relabel(frames, int(track), new_id),
                          f"Track {track} split at frame {t}: frames {frames[0]}..{frames[-1]} "
                          f"are track {new_id}.")

    def set_parent(self, track: int, parent: int | None) -> Correction:
        new = set_parent(self._stand_in(), track, parent)
        text = (f"Track {track} has no parent now." if parent is None else
                f"Track {parent} is the parent of track {track}.")
        return Correction(new, None, text)

    def apply(self, correction: Correction, wrote: bool) -> None:
        """Show ``correction``'s tracks and graph, once its pixels (from :func:`relabel_job`)
        are written; ``wrote``: they made one undo step of the Labels layer (undone with it)."""
        self.history.append((self.tracks, self.graph, wrote))
        self.tracks, self.graph = correction.result.tracks, dict(correction.result.graph)
        self.show_tracks()

    def undo(self) -> bool:
        """Take back the last correction; False when there is none."""
        if not self.history:
            return False
        self.tracks, self.graph, wrote = self.history.pop()
        if wrote:
            self.labels_layer.undo()
        self.show_tracks()
        return True

    def replace(self, result: TrackingResult) -> None:
        """A new tracking run into the same layers (their histories start afresh)."""
        replace_labels(self.labels_layer, result.labels)
        self.tracks, self.graph = result.tracks, dict(result.graph)
        self.history.clear()
        self.show_tracks()

    def show_tracks(self) -> None:
        self.tracks_layer.data = self.tracks  # resets the graph: set it after
        self.tracks_layer.graph = self.graph

    def describe(self, track: int) -> str:
        """'track 3: frames 5..9, parent 2, daughters 4, 5' (or why there is no such track)."""
        frames = self._frames(track)
        if not len(frames):
            return f"No track {track}."
        result = self.result
        parent = self.graph.get(int(track), [0])[0]
        daughters = result.daughters(int(track))
        return (f"Track {track}: frames {frames[0]}..{frames[-1]}"
                + (f", parent {parent}" if parent else "")
                + (f", daughters {', '.join(map(str, daughters))}" if daughters else ""))

    def _frames(self, track: int) -> np.ndarray:
        return self.tracks[self.tracks[:, 0] == int(track), 1].astype(np.int64)

    def _stand_in(self) -> TrackingResult:
        """The result with one-pixel labels: the engine's checks and new tracks and graph
        without touching (or copying) the movie."""
        n_frames = int(self.labels_layer.data.shape[0])
        return TrackingResult(np.zeros((n_frames, 1, 1), np.int32), self.tracks, self.graph)


def relabel_job(labels, relabel: Relabel):
    """Find the pixels of ``relabel.old`` on its frames (a job, for a worker): returns the
    (indices, value) that ``TrackEditor.apply`` writes."""
    parts = []
    for k, t in enumerate(relabel.frames):
        rows, cols = np.nonzero(np.asarray(labels[t]) == relabel.old)
        parts.append((np.full(rows.size, t, np.intp), rows, cols))
        yield Progress(k + 1, len(relabel.frames), f"relabelling frame {t}")
    if not parts:
        return (np.zeros(0, np.intp),) * 3, relabel.new
    indices = tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
    return indices, relabel.new
