"""The docks fit a 1366 x 768 laptop screen, the Everything dock names the image it will use,
and the keyboard shortcuts can be found in the dock (issue 14, items 1, 5 and 9)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import cells_image  # noqa: E402

from napari_segany.gui.interactive.keybindings import key_name  # noqa: E402

pytestmark = pytest.mark.gui
LAPTOP = (1366, 768)
MAX_DOCK_HEIGHT = 600  # px: a laptop's 768 minus napari's title, menu and status bars


@pytest.mark.parametrize("name", ["Segment Anything", "Segment Everything"])
def test_each_dock_fits_a_laptop_screen(make_napari_viewer, name):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*LAPTOP)
    viewer.open_sample("napari-segany", "nuclei_zstack")
    dock, widget = viewer.window.add_plugin_dock_widget("napari-segany", name)
    QApplication.processEvents()
    # the controls as they open (rarely used settings folded away), not only a scroll area
    assert widget.body.minimumSizeHint().height() <= MAX_DOCK_HEIGHT
    assert widget.minimumSizeHint().height() <= MAX_DOCK_HEIGHT
    assert dock.minimumSizeHint().height() <= MAX_DOCK_HEIGHT


def test_the_everything_dock_names_the_image_it_will_use(open_everything, tiny_checkpoint,
                                                         shown):
    viewer, widget = open_everything(cells_image(), name="cells")
    viewer.add_image(np.zeros((2, 2, 2, 30, 30), np.float32), name="5d")
    assert widget.image_combo.currentText() == "cells"
    widget.image_combo.setCurrentText("5d")  # the user picks an image it cannot segment
    widget.image_combo.activated.emit(widget.image_combo.currentIndex())
    assert shown[-1][0] == "error" and "5 spatial axes" in shown[-1][1]
    assert widget.image_combo.currentText() == "cells" == widget.source.layer.name
    viewer.layers["cells"].name = "nuclei"  # renamed: the box follows
    assert widget.image_combo.currentText() == "nuclei"
    viewer.layers.remove("nuclei")
    assert widget.source is None and widget.image_combo.currentText() == ""  # none usable


def test_keyboard_shortcuts_are_listed_in_the_dock(open_widget):
    viewer, widget = open_widget(np.zeros((48, 64), np.uint8))
    section = widget.shortcuts_section
    assert not section.expanded
    section.button.click()  # the user unfolds "Keyboard and mouse"
    assert section.expanded and widget.shortcuts_label.isVisibleTo(widget)
    text = widget.shortcuts_label.text()
    ours = [f for f in viewer.keymap.values() if getattr(f, "segany_widget", None)]
    points = viewer.layers["SegAny points"]
    ours += [f for f in points.keymap.values() if getattr(f, "segany_widget", None)]
    bound = {str(b) for b, f in [*viewer.keymap.items(), *points.keymap.items()] if f in ours}
    assert bound and all(key in text for key in bound), (bound, text)
    assert all(f.__doc__ in text for f in ours) and "Middle-click" in text
    assert "C" in widget.commit_button.toolTip() and key_name("Shift-C") == "Shift+C"
