"""Wrong weights files are understood the moment they are chosen, in both docks (issue 14,
item 3): one notification in plain words naming what the file is and what to choose, the
same words under the field, nothing loaded, and no second message when Load, Run or a click
follows.  The file is chosen as a user chooses it: Browse… and the file dialog."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QFileDialog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import DETECTOR_FILE, cells_image  # noqa: E402

pytestmark = pytest.mark.gui


def text_file(tmp_path):
    path = tmp_path / "mobile_sam.pt"
    path.write_text("This is not a checkpoint: a README saved under the weights' name.\n")
    return path


def truncated_file(tmp_path, tiny_checkpoint):
    path = tmp_path / "sam_vit_b_01ec64.pth"
    data = tiny_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an interrupted download
    return path


#: case -> (model chosen, how the file is made, words the message must hold)
CASES = {
    "text file": ("tiny_sam", lambda tmp, ckpt: text_file(tmp),
                  ["not a PyTorch checkpoint"]),
    "truncated": ("tiny_sam", truncated_file, ["the file is truncated (download it again)"]),
    "detector as FastSAM-s": ("fastsam_s", lambda tmp, ckpt: DETECTOR_FILE,
                              ["MobileSAMv2's object-aware detector", "not FastSAM-s",
                               "Object-aware prompts"]),
    "SAM file as EfficientSAM": ("efficient_sam_vitt", lambda tmp, ckpt: ckpt,
                                 ["weights (tiny_sam)", "not EfficientSAM ViT-Tiny",
                                  "pick tiny_sam under Model"]),
}


def choose_file(qtbot, monkeypatch, browse_button, path):
    """Browse…, then the file dialog returns ``path``."""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    browse_button.click()


def case_file(case, tmp_path, tiny_checkpoint):
    model, make, words = CASES[case]
    path = make(tmp_path, tiny_checkpoint)
    if not Path(path).exists():
        pytest.skip("../shared/parity is absent")
    return model, Path(path), words


def errors(notes):
    return [message for level, message in notes if level == "error"]


@pytest.mark.parametrize("case", list(CASES))
def test_segment_anything_refuses_a_wrong_file_when_chosen(
        case, open_widget, tiny_checkpoint, tmp_path, qtbot, monkeypatch, notes):
    model, path, words = case_file(case, tmp_path, tiny_checkpoint)
    viewer, widget = open_widget(cells_image(), name="cells")
    panel = widget.model_panel
    panel.model_combo.setCurrentText(model)
    choose_file(qtbot, monkeypatch, panel.browse_button, path)
    qtbot.waitUntil(lambda: bool(notes), timeout=10_000)  # said at once, before any Load
    (message,) = errors(notes)
    assert path.name in message and all(w in message for w in words), message
    assert panel.file_label.isVisibleTo(panel) and panel.file_label.text() == message
    panel.load_button.click()  # the user loads it anyway: refused again, not said again
    widget.wait()
    viewer.layers["SegAny points"].add([40, 60])  # and clicks on the image
    widget.wait()
    assert widget.predictor is None and errors(notes) == [message] and len(notes) == 1
    assert "No model loaded" in widget.status_label.text()


@pytest.mark.parametrize("case", list(CASES))
def test_segment_everything_refuses_a_wrong_file_when_chosen(
        case, open_everything, tiny_checkpoint, tmp_path, qtbot, monkeypatch, shown):
    model, path, words = case_file(case, tmp_path, tiny_checkpoint)
    viewer, widget = open_everything(cells_image())
    widget.set_method("fastsam" if model.startswith("fastsam") else "grid")
    panel = widget.model_panel
    panel.model_combo.setCurrentText(model)
    choose_file(qtbot, monkeypatch, panel.browse_button, path)
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    (message,) = errors(shown)
    words = [w.replace("under Model", "under Model (methods") for w in words]
    assert path.name in message and all(w in message for w in words), message
    assert panel.file_label.isVisibleTo(panel) and panel.file_label.text() == message
    widget.run()  # Run anyway: refused before anything is built, not said again
    widget.run()
    assert widget.model is None and widget.results == {} and errors(shown) == [message]
    assert "nothing was written" in widget.status_label.text()


def test_a_fastsam_file_chosen_as_the_detector_is_named_at_once(
        open_everything, qtbot, monkeypatch, shown):
    fastsam = DETECTOR_FILE.parents[1] / "fastsam_s" / "FastSAM-s.synth-seed0.pt"
    if not fastsam.exists():
        pytest.skip("../shared/parity is absent")
    viewer, widget = open_everything(cells_image())
    widget.set_method("object_aware")
    choose_file(qtbot, monkeypatch, widget.detector_row.browse, fastsam)
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    (message,) = errors(shown)
    assert "is a FastSAM network" in message and "ObjectAwareModel.pt" in message
    assert "pick it under Method: FastSAM" in message
    assert widget.detector_row.file_label.isVisibleTo(widget.detector_row)


def test_the_right_file_passes_silently(open_widget, tiny_checkpoint, qtbot, monkeypatch, notes):
    viewer, widget = open_widget(np.zeros((48, 64), np.uint8))
    panel = widget.model_panel
    panel.model_combo.setCurrentText("tiny_sam")
    checked = []
    panel.file_checks.checked.connect(checked.append)
    choose_file(qtbot, monkeypatch, panel.browse_button, tiny_checkpoint)
    qtbot.waitUntil(lambda: bool(checked), timeout=10_000)
    assert not checked[0].refused and checked[0].holds[0] == "tiny_sam"
    assert not panel.file_label.isVisibleTo(panel) and not notes
