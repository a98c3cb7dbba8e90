"""The docks import what napari's first layers need in a background thread."""
from __future__ import annotations

import sys

from napari_segany.gui.shared.warm_up import NAPARI_LAZY_IMPORTS, import_in_background


def test_missing_modules_are_imported_off_the_main_thread(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    thread = import_in_background(("colorsys", "no_such_module_of_segany"))
    assert thread is not None and thread.daemon
    thread.join(10)
    assert "colorsys" in sys.modules  # an unknown module is skipped quietly
    assert import_in_background(("colorsys",)) is None  # nothing left to import


def test_both_docks_start_it_when_they_open(make_napari_viewer, monkeypatch):
    from napari_segany.gui.everything import widget as everything
    from napari_segany.gui.interactive import widget as interactive

    started = []
    for module in (interactive, everything):
        monkeypatch.setattr(module, "import_in_background", lambda m=module: started.append(m))
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    assert started == [interactive, everything]
    assert "pandas" in NAPARI_LAZY_IMPORTS
