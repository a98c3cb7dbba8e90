"""What ``tox -e napari`` shows: the 2D sample with the Segment Anything widget docked."""
from __future__ import annotations

import pytest

from napari_segany.gui.demo import open_demo

pytestmark = pytest.mark.gui


def test_demo_opens_the_sample_with_the_widget_docked(make_napari_viewer):
    viewer = open_demo(make_napari_viewer())
    assert viewer.layers[0].name == "cell (2D)" and viewer.layers[0].data.ndim == 2
    assert any("points" in layer.name for layer in viewer.layers[1:])  # the widget took the image
    assert "Segment Anything" in " ".join(viewer.window._dock_widgets)
