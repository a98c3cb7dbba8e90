"""The one-way import rule: models <- engine <- (gui, cli); no Qt/napari below the GUI."""
from __future__ import annotations

import subprocess
import sys

import pytest

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


ENGINE_MODULES = ("napari_segany", "napari_segany.models.registry",
                  "napari_segany.engine.interactive", "napari_segany.engine.weights",
                  "napari_segany.engine.interactive.transforms")


def test_engine_and_models_import_no_gui():
    """One fresh interpreter imports the modules one after another, then the public API's
    lazy Predictor and load_model; the first step that pulls in a GUI module is named."""
    code = (
        "import importlib, sys\n"
        "def api():\n"
        "    import napari_segany; napari_segany.Predictor; napari_segany.load_model\n"
        f"steps = [(m, lambda m=m: importlib.import_module(m)) for m in {ENGINE_MODULES!r}]\n"
        "for name, step in steps + [('the public API', api)]:\n"
        "    step()\n"
        f"    bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r})\n"
        "    if bad:\n"
        "        print(name, 'pulled in', ','.join(bad)); break\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_linter_contracts_hold():
    pytest.importorskip("importlinter")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([Path(sys.executable).with_name("lint-imports")], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
