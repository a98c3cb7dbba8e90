"""The target Labels layer of both docks: found or made to fit the image, and written with
new ids, undo-aware.

Commits go through ``Labels.data_setitem`` inside ``Labels.block_history()``: napari records
them in the layer's undo history (one Ctrl+Z undoes one commit, all its objects) and
refreshes only the changed region.  Only the pixels inside each mask's bounding box are read.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtWidgets import QCheckBox

from ...engine.errors import SegAnyError
from ...engine.interactive import MaxLabelTracker, ObjectMask, commit_mask
from .image_slice import ImageSource

LABELS_NAME = "SegAny labels"
#: The target choice of both widgets that makes a new Labels layer at the first commit.
NEW_LABELS = "<new Labels layer>"
PREVIEW_NAME = "SegAny preview"
#: Metadata key of the layers the Segment Anything dock makes for an image (prompts,
#: preview): scratch layers, never offered as a commit target.
OWNER_KEY = "napari_segany_image"


def preserve_labels_check() -> QCheckBox:
    """Both docks' choice to commit only onto the target's background (on by default: a
    commit never overwrites labels the user made)."""
    check = QCheckBox("Preserve existing labels")
    check.setChecked(True)
    return check


def is_scratch_layer(layer) -> bool:
    """A prompt or preview layer of the Segment Anything dock (not a Labels target)."""
    return OWNER_KEY in getattr(layer, "metadata", {}) or layer.name == PREVIEW_NAME


def ensure_labels(viewer, source: ImageSource, layer: Labels | None = None) -> Labels:
    """The given Labels layer if it fits the image, else a new one of the image's shape."""
    shape = source.spatial_shape
    if layer is not None and layer in viewer.layers:
        if tuple(layer.data.shape) != shape:
            raise ValueError(
                f"The Labels layer {layer.name!r} has shape {layer.data.shape} but the image "
                f"{source.layer.name!r} has spatial shape {shape}: pick another Labels layer "
                "or leave the choice empty to create one.")
        return layer
    return viewer.add_labels(
        np.zeros(shape, dtype=np.uint32), name=LABELS_NAME,
        scale=source.spatial_scale, translate=source.spatial_translate)


def own_labels(viewer, source: ImageSource) -> Labels | None:
    """Our Labels layer (by name) if it fits the image: the one to adopt when no layer was
    chosen, e.g. after the widget was closed and opened again, rather than a second one."""
    layer = viewer.layers[LABELS_NAME] if LABELS_NAME in viewer.layers else None
    if isinstance(layer, Labels) and tuple(layer.data.shape) == source.spatial_shape:
        return layer
    return None


class LabelsWriter:
    """Commits object masks into a Labels layer with new ids (max + 1, tracked, not scanned)."""

    def __init__(self):
        self.layer: Labels | None = None
        self.tracker = MaxLabelTracker()

    def attach(self, layer: Labels | None) -> None:
        """Commit into ``layer`` from now on (None: no target until the next attach)."""
        if layer == self.layer:  # == : plugin widgets get napari's proxies of layers
            return
        if self.layer is not None:
            self.layer.events.data.disconnect(self._on_replaced)
            self.layer.events.paint.disconnect(self._on_painted)
        self.layer = layer
        self.tracker = MaxLabelTracker()
        if layer is not None:
            layer.events.data.connect(self._on_replaced)
            layer.events.paint.connect(self._on_painted)

    def _on_replaced(self, event=None) -> None:
        self.tracker.invalidate()

    def _on_painted(self, event) -> None:
        # The user painted, filled or we committed: remember the ids written.
        for atom in event.value:
            new = atom[-1] if isinstance(atom, tuple) else getattr(atom, "new_value", 0)
            if np.size(new):
                self.tracker.observe(np.max(new))

    def commit(self, index: tuple[int, ...], masks: list[ObjectMask], preserve: bool = True
               ) -> list[int]:
        """Write ``masks`` (crops of the slice ``index``) with new ids; one undo step.

        Returns the ids used (objects with nothing left to write are skipped).
        """
        layer = self.layer
        _check_ids_fit(layer, self.tracker.next_id(layer.data) + len(masks) - 1)
        plane = layer.data[index] if index else layer.data
        ids = []
        with layer.block_history():
            for mask in masks:
                if mask.bbox is None:
                    continue
                new_id = self.tracker.next_id(layer.data)
                rows, cols = commit_mask(plane, mask.crop, new_id, preserve,
                                         offset=(mask.bbox[0], mask.bbox[2]))
                if rows.size == 0:
                    continue
                leading = tuple(np.full(rows.size, i, dtype=np.intp) for i in index)
                layer.data_setitem((*leading, rows, cols), new_id)  # refreshes the bbox only
                self.tracker.observe(new_id)
                ids.append(new_id)
        return ids


class UndoStep:
    """Writes into a Labels layer spread over several event-loop turns (see ``steps``),
    recorded as **one** undo step: napari's ``block_history`` is entered now and left at
    :meth:`close`.  :meth:`abort` puts back every pixel written so far and leaves no trace
    in the history (napari's own abort of a brush stroke when it has one; else the step is
    undone, which leaves it in the redo history), so a cancelled commit leaves the layer as
    it was."""

    def __init__(self, layer: Labels):
        self.layer = layer
        # napari's abort of a brush stroke (0.9; on the layer itself, not the proxy plugins get)
        self._abort_staged = getattr(getattr(layer, "__wrapped__", layer), "_abort_stroke", None)
        self._block = layer.block_history()
        self._block.__enter__()
        self.open, self.wrote = True, False

    def write(self, indices: tuple, values) -> None:
        if self._abort_staged is None and not self.wrote:  # else napari knows what it staged
            self.wrote = bool(np.any(np.asarray(self.layer.data[indices]) != values))
        # No refresh per write: each would upload and redraw; the layer is refreshed at close.
        self.layer.data_setitem(indices, values, refresh=False)

    def close(self) -> None:
        if self.open:
            self.open = False
            self._block.__exit__(None, None, None)
            self.layer.refresh()

    def abort(self) -> None:
        if not self.open:
            return
        if self._abort_staged is not None:
            self._abort_staged()  # puts back the staged writes and empties the staged step
            self.close()
        else:
            self.close()
            if self.wrote:
                self.layer.undo()


def clear_history(layer: Labels) -> None:
    """Empty a Labels layer's undo and redo history.  napari 0.9 keeps the history across
    ``layer.data = ...`` (a Ctrl+Z would then write pixels of the old data into the new);
    toggling ``editable`` is the public way to reset it (napari resets the history of a
    layer that stops being editable).  The user's mode is kept."""
    mode = layer.mode
    layer.editable = False
    layer.editable = True
    layer.mode = mode


def write_in_chunks(step: UndoStep, indices: tuple, values, chunk: int = 1 << 16):
    """Steps (for ``steps.TimedSteps``) writing ``values`` at ``indices`` (a tuple of index
    arrays), ``chunk`` pixels each."""
    values = np.asarray(values)
    for start in range(0, indices[0].size, chunk):
        part = slice(start, start + chunk)
        step.write(tuple(axis[part] for axis in indices), values[part] if values.ndim else values)
        yield


def _check_ids_fit(layer: Labels, largest: int) -> None:
    """Refuse a commit whose new ids overflow the layer's integer type (numpy would raise in
    the middle of the writes, or wrap around onto other objects)."""
    dtype = np.dtype(layer.data.dtype)
    if np.issubdtype(dtype, np.integer) and largest > np.iinfo(dtype).max:
        raise SegAnyError(
            f"The Labels layer {layer.name!r} holds {dtype} ids (at most {np.iinfo(dtype).max}): "
            "no id is left for the new object(s). Convert it (Layer > Convert data type > "
            "uint32) or pick another Labels layer, then commit again: the objects are kept.")
