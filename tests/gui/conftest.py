"""Fixtures of the GUI tests: a tiny SAM registered for the test with a synthesized-weights
checkpoint file, a geometric fake model, and the widget opened as a user opens it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segany.models import registry
from napari_segany.models.registry import ModelSpec

TINY_KWARGS = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=256)
TINY_SPEC = ModelSpec(
    name="tiny_sam", family="sam", task=registry.PROMPTABLE,
    builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=TINY_KWARGS,
    input_size=256, file_name="tiny_sam.pt", license="Apache-2.0 (test weights)",
    checkpoint_format="state_dict", description="Tiny SAM for tests (random weights)",
)
OFFLINE_SPEC = ModelSpec(
    name="offline_sam", family="sam", task=registry.PROMPTABLE,
    builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=TINY_KWARGS,
    input_size=256, file_name="offline_sam.pt", license="Apache-2.0",
    checkpoint_format="state_dict", description="a model whose weights are nowhere",
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """Random weights of the tiny SAM, saved as an official-style state dict file."""
    from napari_segany.models.sam.build import build_sam_vit

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_sam.pt"
    torch.save(build_sam_vit(**TINY_KWARGS).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def fake_checkpoint(tmp_path_factory):
    from _fakes import FakePromptable

    path = tmp_path_factory.mktemp("weights") / "fake.pt"
    torch.save(FakePromptable().state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def test_models(monkeypatch, tmp_path):
    """Register the test models; an empty weights cache, so nothing is found by accident."""
    from _fakes import FAKE_SPEC

    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    for spec in (TINY_SPEC, OFFLINE_SPEC, FAKE_SPEC):
        monkeypatch.setitem(registry.REGISTRY, spec.name, spec)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    """QSettings (the remembered precision) in a folder of the test: the user's own settings
    are never read nor written."""
    from qtpy.QtCore import QSettings

    folder = str(tmp_path / "qsettings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)
    return tmp_path / "qsettings"


@pytest.fixture(autouse=True)
def _release_closed_viewers(qapp):
    """After each test: Qt's pending deletions run and Python's cycles made by the test are
    collected, so the closed viewers, docks and models of a test do not stay in memory for
    the rest of the run."""
    yield
    from _memory import return_free_memory
    from qtpy.QtCore import QCoreApplication, QEvent

    _drop_closed_windows_theme_hooks()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qapp.processEvents()
    return_free_memory(everything=False)  # this test's objects; all of them between modules


def _drop_closed_windows_theme_hooks():
    """napari 0.9 leaks every closed window: ``Window._disconnect_theme`` disconnects a new
    lambda, not the one ``_connect_theme`` connected to the theme's ``canvas`` event, so the
    theme keeps the window, its viewer, layers and docks (about 15 MB a test).  Drop those
    lambdas of closed windows (a window that is closed has no ``_qt_window``)."""
    from napari.utils.theme import _themes

    for theme in _themes.values():
        emitter = theme.events.canvas
        for callback in list(emitter.callbacks):
            if "_connect_theme" not in getattr(callback, "__qualname__", ""):
                continue
            cells = [cell.cell_contents for cell in callback.__closure__ or ()]
            if cells and not any(hasattr(window, "_qt_window") for window in cells):
                emitter.disconnect(callback)


def collect_notifications(monkeypatch) -> list:
    """Every notification of the docks (they all go through gui.shared.notify), as
    (level, message)."""
    from napari_segany.gui.shared import notify

    shown = []
    for level in ("info", "warning", "error"):
        monkeypatch.setattr(notify, f"show_{level}",
                            lambda msg, lv=level: shown.append((lv, str(msg))))
    return shown


@pytest.fixture
def notes(monkeypatch):
    """The notifications the widget shows, as (level, message)."""
    return collect_notifications(monkeypatch)


@pytest.fixture
def open_widget(make_napari_viewer):
    """``open_widget(image=None, show=False, **layer_kwargs)`` -> (viewer, widget)."""

    def make(image=None, show=False, sample=None, **layer_kwargs):
        viewer = make_napari_viewer(show=show)
        if sample is not None:
            viewer.open_sample("napari-segany", sample)
        if image is not None:
            viewer.add_image(image, **layer_kwargs)
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
        return viewer, widget

    return make


@pytest.fixture
def small_image():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (96, 128)).astype(np.float32)
    image[30:60, 40:80] += 100
    return image


@pytest.fixture
def shown(monkeypatch):
    """The notifications the everything-mode widget shows, as (level, message)."""
    return collect_notifications(monkeypatch)


@pytest.fixture
def open_everything(make_napari_viewer):
    """A viewer with ``image`` as layer "cells" (or ``name``) and the Segment Everything
    widget opened as a user opens it."""
    def make(image, name="cells", **layer_kwargs):
        viewer = make_napari_viewer()
        viewer.add_image(image, name=name, **layer_kwargs)
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
        return viewer, widget

    return make


@pytest.fixture
def grid_everything(open_everything, tiny_checkpoint):
    """``open_everything`` with the tiny SAM, grid 4 x 4, every candidate kept, no filters."""
    from _everything import NO_FILTERS, RANDOM_WEIGHTS, cells_image

    def make(image=None, name="cells"):
        viewer, widget = open_everything(cells_image() if image is None else image, name)
        widget.set_method("grid")
        widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
        widget.set_params(points_per_side=4, **RANDOM_WEIGHTS)
        widget.set_filters(**NO_FILTERS)
        return viewer, widget

    return make
