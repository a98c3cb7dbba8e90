"""The "3D Objects" dock: every object of a (Z, Y, X) stack, one id per object.

Scripting::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "3D Objects")
    w.set_image("nuclei")                         # a 3D Image layer or its name
    w.set_method("grid"); w.set_model("mobile_sam"); w.set_params(points_per_side=16)
    layer = w.run()                               # a new Labels layer; waits
    w.link("per-slice labels")                    # a Labels layer's per-slice ids -> 3D ids

*Segment 3D objects* runs everything mode on every slice (``iter_segment_volume``: any
method, the layer's contrast limits for every slice) and links the masks across slices, in
a worker (progress bar, Cancel: nothing is written); 3D objects smaller than the minimum
size, or covering more than the maximum part of a slice (the background, which everything
mode often returns as a mask), are then dropped.  The result goes into a new Labels
layer, or into a chosen Labels layer of the stack's shape with ids after its largest, on its
background only, as one undo step (Ctrl+Z on that layer).  *Link slices* turns a Labels
layer whose ids restart on every slice into one id per 3D object (``link_slices``), in
place as one undo step.  The changed pixels are found in the worker; the main thread only
writes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QFormLayout, QGroupBox, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ...engine.errors import ImageError
from ...engine.everything.presets import FilterSettings
from ...engine.progress import Progress
from ...engine.workflows.slices import link_slices
from ...engine.workflows.volume import iter_segment_volume
from ..everything.jobs import ModelChoice, load_missing
from ..everything.linking import link_iou_spin
from ..everything.method_controls import MethodControls
from ..everything.params import METHOD_TITLES
from ..shared.labels_io import NEW_LABELS
from ..shared.qt_helpers import ShutsDownWhenClosed, wrapped_label
from .common import (
    FrameReader, JobPanel, LayerPicker, blocking_job, changed_pixels, spatial_ndim,
)


@dataclass
class VolumeRequest:
    """What one run needs, read from the controls on the main thread."""

    data: object
    method: str
    params: dict
    link_iou: float
    contrast_limits: tuple
    model_choice: ModelChoice
    model: object | None
    detector_choice: ModelChoice | None
    detector: object | None
    target: object | None = None  # an existing Labels layer's data, or None: a new layer
    min_size: int = 0  # voxels: smaller 3D objects are dropped
    max_fraction: float = 1.0  # objects covering more of a slice are dropped (background)


class Objects3DWidget(ShutsDownWhenClosed, QWidget):
    """Everything mode on every slice, linked into 3D objects; linking of per-slice labels."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.closed = False
        self.model = self.model_choice = self.detector = self.detector_choice = None
        self._running: tuple | None = None  # (image layer, target layer or None) of the run
        self._written = None  # the Labels layer the last run wrote
        self._build_ui()

    # ============================ public API ===============================================
    def set_image(self, layer) -> None:
        self.image_picker.choose(layer)

    def set_method(self, method: str, detector=None) -> None:
        self.method_controls.set_method(method, detector)

    def set_model(self, name: str, checkpoint=None, device=None,
                  precision: str | None = None) -> None:
        """Choose the model (loaded at the next run, then kept)."""
        self.model_panel.select(name, checkpoint, device, precision)

    def set_params(self, **params) -> None:
        self.params.set_values(**params)

    def set_filters(self, min_size: int | None = None, max_slice_percent: int | None = None) -> None:
        """Objects smaller than ``min_size`` voxels, or covering more than
        ``max_slice_percent`` % of a slice (100: no limit), are dropped after linking."""
        if min_size is not None:
            self.min_size_spin.setValue(int(min_size))
        if max_slice_percent is not None:
            self.max_fraction_spin.setValue(int(max_slice_percent))

    def run(self, wait: bool = True):
        """Segment the chosen stack; with ``wait``, the Labels layer written (or None)."""
        self._written = None
        self._start_volume()
        if wait:
            self.jobs.wait()
        return self._written

    def link(self, layer=None, wait: bool = True) -> None:
        """Link the per-slice ids of a Labels layer (or the chosen one) into 3D ids."""
        if layer is not None:
            self.link_picker.choose(layer)
        self._start_link()
        if wait:
            self.jobs.wait()

    def cancel(self) -> None:
        self.jobs.cancel()

    def wait(self, timeout: float = 600.0) -> None:
        self.jobs.wait(timeout)

    @property
    def method(self) -> str:
        return self.method_controls.method

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        viewer = self.viewer
        self.image_picker = LayerPicker(viewer, Image, accept=lambda l: spatial_ndim(l) == 3)
        self.method_controls = MethodControls()
        # the parts scripts reach directly
        self.model_panel, self.params = self.method_controls.model_panel, self.method_controls.params
        self.iou_spin = link_iou_spin()
        defaults = FilterSettings()
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(0, 10**9)
        self.min_size_spin.setValue(defaults.min_area)
        self.min_size_spin.setToolTip("3D objects with fewer voxels are dropped (specks).")
        self.max_fraction_spin = QSpinBox()
        self.max_fraction_spin.setRange(1, 100)
        self.max_fraction_spin.setSuffix(" %")
        self.max_fraction_spin.setValue(int(100 * (defaults.max_area_fraction or 1)))
        self.max_fraction_spin.setToolTip("Objects covering more than this part of a slice are "
                                          "dropped (usually the background); 100 keeps all.")
        self.target_picker = LayerPicker(viewer, Labels, accept=self._fits_image,
                                         none_text=NEW_LABELS)
        self.run_button = QPushButton("Segment 3D objects")
        self.link_picker = LayerPicker(viewer, Labels, accept=lambda l: l.data.ndim == 3)
        self.link_button = QPushButton("Link slices")
        self.link_button.setToolTip("Give one id per 3D object to labels whose ids restart "
                                    "on every slice (one undo step).")
        self.jobs = JobPanel(self)
        self.status_label = wrapped_label("Pick a 3D image and a method, then Segment 3D objects.")
        self._lay_out()
        self.image_picker.currentTextChanged.connect(lambda _: self.target_picker.refresh())
        self.run_button.clicked.connect(lambda: self._start_volume())
        self.link_button.clicked.connect(lambda: self._start_link())

    def _lay_out(self) -> None:
        auto = QGroupBox("Everything mode on every slice")
        form = QFormLayout(auto)
        form.addRow("3D image", self.image_picker)
        self.method_controls.add_rows(form)
        form.addRow(self.params)
        form.addRow("Min size (voxels)", self.min_size_spin)
        form.addRow("Max area of a slice", self.max_fraction_spin)
        form.addRow("Into", self.target_picker)
        form.addRow(self.run_button)
        link = QGroupBox("Per-slice labels into 3D objects")
        lform = QFormLayout(link)
        lform.addRow("Labels", self.link_picker)
        lform.addRow(self.link_button)
        layout = QVBoxLayout(self)
        layout.addWidget(auto)
        shared = QFormLayout()
        shared.addRow("Link IoU", self.iou_spin)
        layout.addLayout(shared)
        layout.addWidget(link)
        layout.addWidget(self.jobs)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _fits_image(self, layer) -> bool:
        image = self.image_picker.layer() if hasattr(self, "image_picker") else None
        return image is not None and tuple(layer.data.shape) == _spatial_shape(image)

    # ============================ segment the volume =======================================
    def _start_volume(self) -> None:
        image = self.image_picker.layer()
        if image is None:
            show_error("No 3D image: open a (Z, Y, X) stack and pick it in the 3D Objects dock.")
            return
        target = self.target_picker.layer()
        request = self._request(image, target)
        if request is None:
            return
        if self.jobs.start(_volume_job(request), "3D objects", self._volume_done):
            self._running = (image, target)
            self.status_label.setText(f"{METHOD_TITLES[request.method]} on {image.data.shape[0]} "
                                      f"slices of {image.name!r}, then linking…")

    def _request(self, image, target) -> VolumeRequest | None:
        choice = self.method_controls.model_choice()
        if not choice.name:
            show_error(f"No model can run {METHOD_TITLES[self.method]}: none is registered.")
            return None
        detector = self.method_controls.detector_choice(choice) \
            if self.method == "object_aware" else None
        return VolumeRequest(
            image.data, self.method, self.params.values(self.method), self.iou_spin.value(),
            tuple(float(v) for v in image.contrast_limits), choice,
            self.model if choice == self.model_choice else None, detector,
            self.detector if detector is not None and detector == self.detector_choice else None,
            None if target is None else target.data, self.min_size_spin.value(),
            self.max_fraction_spin.value() / 100)

    def _volume_done(self, outcome) -> None:
        request, labels, changes = outcome
        self.model, self.model_choice = request.model, request.model_choice
        if request.detector is not None:
            self.detector, self.detector_choice = request.detector, request.detector_choice
        image, target = self._running
        n = int(labels.max()) if labels.size else 0
        if target is None:
            self._written = self.viewer.add_labels(
                labels, name=f"{image.name} 3D objects", scale=image.scale[-3:],
                translate=image.translate[-3:])
            self._volume_written(image, n, "")
        elif target in self.viewer.layers and target.data is request.target:
            self.jobs.write(target, *changes, lambda pixels: self._volume_written(
                image, n, " (Ctrl+Z on it undoes them).", target, pixels))
        else:
            show_error("The target Labels layer was removed or replaced during the run: "
                       "nothing was written. Run again.")

    def _volume_written(self, image, n: int, undo: str, target=None, pixels: int = 0) -> None:
        """The objects are in their layer (``target``: written in steps; None: cancelled)."""
        if pixels is None:
            self.status_label.setText("3D objects cancelled; nothing was written.")
            return
        if target is not None:
            self._written = target
        self.status_label.setText(f"{n} 3D objects in {self._written.name!r}{undo}")
        show_info(f"{n} 3D objects from {image.name!r} in {self._written.name!r}.")

    # ============================ link slices ==============================================
    def _start_link(self) -> None:
        layer = self.link_picker.layer()
        if layer is None:
            show_error("No 3D Labels layer to link: pick one whose ids restart on every slice.")
            return
        job = _link_job(layer.data, self.iou_spin.value())
        if self.jobs.start(job, "Linking slices", lambda out: self._link_done(layer, out)):
            self.status_label.setText(f"Linking the slices of {layer.name!r}…")

    def _link_done(self, layer, outcome) -> None:
        data, linked, changes = outcome
        if layer not in self.viewer.layers or layer.data is not data:
            show_error(f"{layer.name!r} was removed or replaced while linking: nothing written.")
            return
        n = int(linked.max()) if linked.size else 0
        if np.issubdtype(layer.data.dtype, np.integer) and n > np.iinfo(layer.data.dtype).max:
            new = self.viewer.add_labels(linked, name=f"{layer.name} linked", scale=layer.scale,
                                         translate=layer.translate)
            show_info(f"{n} objects do not fit {layer.name!r} ({layer.data.dtype}): they are "
                      f"in the new layer {new.name!r}.")
            self.status_label.setText(f"Linked: {n} 3D objects.")
        else:
            self.jobs.write(layer, *changes, lambda pixels: self._linked(layer, n, pixels))

    def _linked(self, layer, n: int, pixels: int | None) -> None:
        if pixels is None:
            self.status_label.setText("Linking cancelled; nothing was written.")
            return
        show_info(f"{layer.name!r}: {n} 3D objects (Ctrl+Z on the layer undoes the linking).")
        self.status_label.setText(f"Linked: {n} 3D objects.")

    # ============================ closing ==================================================
    def _shut_down(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.jobs.cancel()
        for picker in (self.image_picker, self.target_picker, self.link_picker):
            picker.disconnect_viewer()


def _spatial_shape(layer) -> tuple:
    shape = tuple(layer.data.shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def _volume_job(request: VolumeRequest):
    """Load what is missing, segment and link every slice, then (into an existing layer)
    the pixels to write; returns (request, labels, changes or None)."""
    yield from load_missing(request)
    labels = yield from iter_segment_volume(
        request.data, request.model, request.method, request.link_iou, request.detector,
        request.contrast_limits, **request.params)
    yield Progress(1, 1, "dropping specks and background")
    labels = drop_objects(labels, request.min_size, request.max_fraction)
    changes = None if request.target is None else _into_existing(request.target, labels)
    return request, labels, changes


def drop_objects(labels: np.ndarray, min_size: int, max_fraction: float) -> np.ndarray:
    """``labels`` without the 3D objects smaller than ``min_size`` voxels or covering more
    than ``max_fraction`` of a slice; ids renumbered 1..N, in the same order."""
    n = int(labels.max()) if labels.size else 0
    if n == 0 or (min_size <= 0 and max_fraction >= 1):
        return labels
    per_slice = np.stack([np.bincount(plane.ravel(), minlength=n + 1) for plane in labels])
    widest = per_slice.max(axis=0) / float(labels.shape[1] * labels.shape[2])
    keep = (per_slice.sum(axis=0) >= min_size) & (widest <= max_fraction)
    keep[0] = False
    lut = np.zeros(n + 1, labels.dtype)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[labels]


def _into_existing(target, labels: np.ndarray):
    """The pixels that put ``labels`` on the background of ``target`` with ids after its
    largest; ImageError when they would not fit its integer type."""
    target = np.asarray(target)
    offset = int(target.max()) if target.size else 0
    largest = offset + (int(labels.max()) if labels.size else 0)
    if np.issubdtype(target.dtype, np.integer) and largest > np.iinfo(target.dtype).max:
        raise ImageError(f"The target Labels hold {target.dtype} ids: {largest} do not fit. "
                         "Write into a new Labels layer instead.")
    where = np.nonzero((labels > 0) & (target == 0))
    return where, (labels[where] + offset).astype(target.dtype)


def _link_job(data, min_iou: float):
    reader = FrameReader(data)
    linked = yield from blocking_job(lambda: link_slices(reader, 0, min_iou), reader,
                                     "Linking slices")
    yield Progress(1, 1, "finding the changed pixels")
    return data, linked, changed_pixels(data, linked)

