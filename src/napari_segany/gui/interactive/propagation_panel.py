"""The "Propagate" panel: follow a committed object through z (stacks) or t (time series).

It runs :func:`napari_segany.engine.propagation.iter_propagate_stack` in a napari worker
(progress bar, Cancel) on the host widget's image, model and embedding cache, and writes
the result into the host's Labels layer with the object's own id as **one undo step**
(``Labels.block_history`` + one ``data_setitem``, as the interactive commits).  A cancelled
or failed run writes nothing.

The object: the id in *Object*, or (0, the default) the last id committed or painted into
the Labels layer, else the largest id on the shown slice; its mask on the shown slice is
the seed.  Axis: one
of the axes before Y, X (for T, Z, Y, X both can be walked; the other stays at the viewer's
position).  The range is in world units along that axis (``scale`` and ``translate`` of
the image layer; rotations and shears are not taken into account).

Scale and the area stop rule: when the walked axis has the same kind of unit as Y and X
(length or pixels, and is not labelled t/time), a slice counts as ``scale[axis] / XY pixel
size`` steps of the area rule (``StopRules.max_area_ratio``); for a time axis one frame is
one step.

The host (the Segment Anything widget) provides ``viewer``, ``source`` (ImageSource),
``predictor``, ``cache`` and ``writer.layer`` (the target Labels).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
    QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ..engine.errors import Cancelled, SegAnyError
from ..engine.images import to_uint8_rgb
from ..engine.propagation import iter_propagate_stack, SliceStack, StopRules
from ..engine.propagation.prompts import anisotropy
from ..models.registry import PROMPTABLE
from .workers import WorkerFailure, alive_only, process_events_until


@dataclass(frozen=True)
class _Run:
    """A prepared propagation: the engine job, the Labels layer to write and the object id,
    the image it reads and the shape both had when it started."""

    job: object
    layer: object
    value: int
    preserve: bool
    image: object = None
    shape: tuple = ()


DIRECTIONS = {"both": "Both ways", "forward": "Forward (+)", "backward": "Backward (−)"}
TIME_LABELS = ("t", "time", "frame", "frames")


class PropagationPanel(QWidget):
    """Direction, range, stop thresholds, Propagate / Cancel, progress."""

    def __init__(self, host, parent=None):
        super().__init__(parent)
        self.host = host
        self.worker = None
        self.last_result = None
        self._cancel: threading.Event | None = None
        self._run: _Run | None = None  # the running propagation
        self._cancel_reason = ""  # why it was cancelled, when not by the user
        self._source = None  # the image the axis/range controls were built for
        self._watched = None  # the Labels layer whose writes tell the last object id
        self.last_written_id = 0
        self._build_ui()

    # ============================ public API ==============================================
    def propagate(self, object_id: int | None = None, wait: bool = False):
        """Start propagating the object (id, or the panel's choice) from the shown slice.

        Returns the worker, or None when nothing could start (a notification says why).
        ``wait`` processes Qt events until the result is written.
        """
        if self.busy:
            show_info("A propagation is already running.")
            return None
        try:
            run = self._prepare(object_id)
        except (SegAnyError, ValueError) as exc:
            show_error(f"Cannot propagate: {exc}")
            return None
        self._start(run)
        if wait:
            self.wait()
        return self.worker

    def cancel(self) -> None:
        """Stop the running propagation; nothing is written."""
        if self._cancel is not None:
            self._cancel.set()

    def layer_removed(self, layer) -> None:
        """The host saw ``layer`` leave the viewer: a run reading or writing it stops."""
        run = self._run
        if run is None or self._cancel is None or self._cancel.is_set():
            return
        if layer == run.image or layer == run.layer:  # == : proxies
            kind = "image" if layer == run.image else "Labels layer"
            self._cancel_reason = f"The {kind} {layer.name!r} was removed"
            self.cancel()

    def release(self) -> None:
        """Stop watching the Labels layer (the host widget is closed)."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_paint)
            self._watched = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def wait(self, timeout: float = 600.0) -> None:
        process_events_until(lambda: not self.busy, timeout, "The propagation", poll=0.005)

    def sync(self) -> None:
        """Rebuild the axis choices and the range for the host's current image (cheap)."""
        if self.host.writer.layer is not None:
            self._watch(self.host.writer.layer)
        source = self.host.source
        if source is None or source is self._source:
            return
        self._source = source
        labels = _axis_labels(source)
        self.axis_combo.blockSignals(True)
        self.axis_combo.clear()
        self.axis_combo.addItems(labels[: source.n_leading])
        self.axis_combo.setCurrentIndex(max(0, source.n_leading - 1))  # z of T, Z, Y, X
        self.axis_combo.blockSignals(False)
        self.axis_combo.setEnabled(source.n_leading > 1)
        self._reset_range()
        self._set_busy(self.busy)
        if source.n_leading == 0:
            self.status_label.setText("Propagation needs a z-stack or a time series.")

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        self.axis_combo = QComboBox()
        self.direction_combo = QComboBox()
        for key, text in DIRECTIONS.items():
            self.direction_combo.addItem(text, key)
        self.from_spin, self.to_spin = QDoubleSpinBox(), QDoubleSpinBox()
        self.range_label = QLabel()
        self.object_spin = QSpinBox()
        self.object_spin.setRange(0, 2 ** 31 - 1)
        self.object_spin.setSpecialValueText("last committed")
        self.score_spin = _spin(0.0, 1.0, 0.05, StopRules.min_score, 2)
        self.score_spin.setToolTip("Stop where the model's predicted IoU falls below this")
        self.area_spin = _spin(1.0, 100.0, 0.5, StopRules.max_area_ratio, 1, suffix=" ×")
        self.area_spin.setToolTip("Stop where the area grows or shrinks by more than this "
                                  "per step of one XY pixel size (thick slices allow more)")
        self.past_empty_check = QCheckBox("Walk past empty slices")
        self.overwrite_check = QCheckBox("Overwrite other objects")
        self.propagate_button = QPushButton("Propagate (Shift+S)")
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Axis", self.axis_combo)
        form.addRow("Direction", self.direction_combo)
        range_row = QHBoxLayout()
        for w in (self.from_spin, QLabel("to"), self.to_spin):
            range_row.addWidget(w)
        form.addRow("Range", range_row)
        form.addRow("", self.range_label)
        form.addRow("Object", self.object_spin)
        form.addRow("Min score", self.score_spin)
        form.addRow("Max area change", self.area_spin)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress)
        progress_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        for w in (self.past_empty_check, self.overwrite_check, self.propagate_button):
            layout.addWidget(w)
        layout.addLayout(progress_row)
        layout.addWidget(self.status_label)
        self._set_busy(False)

        self.axis_combo.currentIndexChanged.connect(lambda _: self._reset_range())
        self.from_spin.valueChanged.connect(lambda _: self._show_range())
        self.to_spin.valueChanged.connect(lambda _: self._show_range())
        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)

    def _reset_range(self) -> None:
        source, axis = self.host.source, self.axis_combo.currentIndex()
        if source is None or axis < 0:
            return
        first, last = (_world(source, axis, i) for i in (0, source.spatial_shape[axis] - 1))
        step = abs(source.spatial_scale[axis]) or 1.0
        for spin, value in ((self.from_spin, first), (self.to_spin, last)):
            spin.blockSignals(True)
            spin.setDecimals(3 if step < 1 else 2)
            spin.setRange(min(first, last), max(first, last))
            spin.setSingleStep(step)
            spin.setValue(value)
            spin.blockSignals(False)
        self._show_range()

    def _show_range(self) -> None:
        first, last = self._index_range()
        self.range_label.setText(f"slices {first}–{last} (world units along the axis)")

    def _index_range(self) -> tuple[int, int]:
        source, axis = self.host.source, self.axis_combo.currentIndex()
        if source is None or axis < 0:
            return 0, 0
        ends = sorted(_index(source, axis, s.value()) for s in (self.from_spin, self.to_spin))
        return ends[0], ends[1]

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        stack = self.host.source is not None and self.host.source.n_leading > 0
        self.propagate_button.setEnabled(not busy and stack)
        self.progress.setValue(0)

    # ============================ running ==================================================
    def _prepare(self, object_id) -> _Run:
        host = self.host
        if host.source is None:
            raise SegAnyError("No image: pick one in the widget first.")
        if host.predictor is None:
            raise SegAnyError("Load a model first.")
        if host.predictor.spec.task != PROMPTABLE:
            raise SegAnyError(f"{host.predictor.spec.name} has no prompt decoder: load a SAM-family "
                              "model (e.g. mobile_sam) to propagate.")
        layer = host.writer.layer
        if layer is None:
            raise SegAnyError("No Labels layer to read the object from and write into.")
        self.sync()
        source, axis = host.source, self.axis_combo.currentIndex()
        if source.n_leading < 1:
            raise SegAnyError("The image is 2D: propagation needs a z-stack or a time series.")
        if tuple(layer.data.shape) != source.spatial_shape:
            raise SegAnyError(f"The Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}"
                              f", the image {source.spatial_shape}: pick a Labels layer of the "
                              "image's shape in the widget.")
        index = source.index_from_world(host.viewer.dims.point)
        value = self._object_id(layer, index, object_id)
        seed = np.asarray(layer.data[index]) == value
        if not seed.any():
            raise SegAnyError(f"Object {value} is not on the shown slice {index}: go to a slice "
                              "where it is, or set its id in 'Object'.")
        first, last = self._index_range()
        if not first <= index[axis] <= last:
            raise SegAnyError(f"The range (slices {first}–{last}) must include the shown slice "
                              f"{index[axis]}.")
        self._cancel = threading.Event()
        job = iter_propagate_stack(
            _stack(source, axis, index), seed, index[axis], host.predictor.model,
            self.direction_combo.currentData(), stop_at=(first, last), steps=_steps(source, axis),
            rules=self._rules(), cache=host.cache, cancel=self._cancel,
            meta=dict(axis=axis, position=index))
        return _Run(job, layer, value, not self.overwrite_check.isChecked(), source.layer,
                    tuple(layer.data.shape))

    def _object_id(self, layer, index, chosen) -> int:
        value = chosen if chosen is not None else self.object_spin.value()
        if value:
            return int(value)
        plane = np.asarray(layer.data[index])
        if self.last_written_id and (plane == self.last_written_id).any():
            return self.last_written_id
        if plane.any():  # ids grow with each commit: the largest is the newest
            return int(plane.max())
        raise SegAnyError("No committed object on the shown slice: commit one (C), or set "
                          "its id in 'Object'.")

    def _rules(self) -> StopRules:
        return StopRules(min_score=self.score_spin.value(), max_area_ratio=self.area_spin.value(),
                         stop_on_empty=not self.past_empty_check.isChecked())

    def _start(self, job: _Run) -> None:
        worker = create_worker(_guarded, job.job, _start_thread=False, _ignore_errors=True)
        # Results come through the event loop: dropped if the viewer closed meanwhile.
        worker.yielded.connect(alive_only(self, self._on_progress))
        worker.returned.connect(alive_only(self, lambda result: self._on_done(result, job)))
        worker.errored.connect(alive_only(self, self._on_error))
        self.worker, self._run, self._cancel_reason = worker, job, ""
        self._set_busy(True)
        self.status_label.setText(f"Propagating object {job.value}…")
        worker.start()

    def _on_progress(self, report) -> None:
        self.progress.setValue(int(round(100 * report.fraction)))
        self.progress.setFormat(f"{report.message} %p%")

    def _on_done(self, result, job: _Run) -> None:
        self._finish()
        self.last_result = result
        layer, value = job.layer, job.value
        if layer not in self.host.viewer.layers:
            show_warning(f"The Labels layer {layer.name!r} is gone: nothing was written.")
            return
        if tuple(layer.data.shape) != job.shape:
            self.status_label.setText("The Labels layer changed shape; nothing was written.")
            show_warning(f"The data of {layer.name!r} was replaced by an array of shape "
                         f"{tuple(layer.data.shape)} during the propagation (it was {job.shape}): "
                         "nothing was written. Propagate again.")
            return
        coords, values = result.label_changes(layer.data, value, preserve=job.preserve)
        with layer.block_history():  # one Ctrl+Z undoes the whole propagation
            if values.size:
                layer.data_setitem(coords, values)
        n = len(result.indices) - 1
        self.status_label.setText(f"Object {value}: {n} more slice(s).\n{result.summary()}")
        show_info(f"Propagated object {value} to {n} more slice(s) of {layer.name!r}.")

    def _on_error(self, exc: Exception) -> None:
        self._finish()
        if isinstance(exc, Cancelled):
            reason = f"{self._cancel_reason}: p" if self._cancel_reason else "P"
            self.status_label.setText("Cancelled; nothing was written.")
            show_info(f"{reason}ropagation cancelled; nothing was written.")
            return
        self.status_label.setText("The propagation failed; nothing was written.")
        show_error(f"The propagation failed: {exc}")

    def _finish(self) -> None:
        self.worker, self._cancel, self._run = None, None, None
        self._set_busy(False)

    def _watch(self, layer) -> None:
        """Remember the ids written into ``layer`` (commits, painting): the 'last' object."""
        if layer == self._watched:  # == : plugin widgets get napari's proxies of layers
            return
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_paint)
        self._watched = layer
        layer.events.paint.connect(self._on_paint)

    def _on_paint(self, event) -> None:
        for atom in event.value:
            new = atom[-1] if isinstance(atom, tuple) else getattr(atom, "new_value", 0)
            if np.size(new) and np.max(new) > 0:
                self.last_written_id = int(np.max(new))

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.sync()
        super().showEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.cancel()
        super().closeEvent(event)


def _guarded(job):
    """The engine job as a worker generator (superqt would swallow a RuntimeError)."""
    try:
        return (yield from job)
    except RuntimeError as exc:
        raise WorkerFailure(f"The propagation failed: {exc}") from exc


def _stack(source, axis: int, index: tuple) -> SliceStack:
    """The slices of the host's image along ``axis`` through ``index``, seen as the widget
    sees them (same raw pixels and normalisation, hence the same embedding cache keys).
    The run reads the data array it started with: the user may replace the layer's data
    (another shape) meanwhile, and it is read from the worker's threads."""
    normalisation = source.normalisation()
    data = source.layer.data
    if source.channel_first:
        to_rgb = source.to_rgb  # per-channel percentiles: no layer state read in the thread
    else:
        limits = tuple(float(v) for v in source.layer.contrast_limits)

        def to_rgb(raw, limits=limits):
            return to_uint8_rgb(raw, limits)

    def read(i: int):
        where = list(index)
        where[axis] = i
        return source.read(tuple(where), data)

    return SliceStack(source.spatial_shape[axis], read, to_rgb, normalisation)


def _spatial_units(source) -> list:
    units = list(getattr(source.layer, "units", []) or [])
    return units[1:] if source.channel_first else units


def _axis_labels(source) -> list[str]:
    labels = list(getattr(source.layer, "axis_labels", []) or [])
    labels = labels[1:] if source.channel_first else labels
    if len(labels) != len(source.spatial_shape) or all(l.lstrip("-").isdigit() for l in labels):
        labels = [f"axis {i}" for i in range(len(source.spatial_shape))]
    return labels


def _steps(source, axis: int) -> float:
    """Slice spacing in XY pixel sizes for a spatial axis; 1 for a time axis."""
    units = _spatial_units(source)
    label = _axis_labels(source)[axis].lower()
    spatial = label not in TIME_LABELS
    if len(units) == len(source.spatial_shape):
        spatial = spatial and units[axis].dimensionality == units[-1].dimensionality
    return anisotropy(source.spatial_scale, axis) if spatial else 1.0


def _world(source, axis: int, index: int) -> float:
    return float(source.spatial_translate[axis] + source.spatial_scale[axis] * index)


def _index(source, axis: int, world: float) -> int:
    scale = source.spatial_scale[axis] or 1.0
    i = int(round((world - source.spatial_translate[axis]) / scale))
    return int(np.clip(i, 0, source.spatial_shape[axis] - 1))


def _spin(lo, hi, step, value, decimals, suffix="") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin
