"""The precision setting of the model panel (both docks): it reaches the loaded encoder,
another choice loads again, and the user's choice is remembered across sessions (QSettings
in a folder of the test, see conftest.isolated_settings)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.embeddings import model_identity
from napari_segany.engine.precision import PRECISION_ENV, resolve_precision
from napari_segany.gui.shared.precision_choice import (
    PrecisionCombo, remember_precision, remembered_precision,
)
from napari_segany.models.precision import precision_of

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def no_session_precision(monkeypatch, one_thread):
    monkeypatch.delenv(PRECISION_ENV, raising=False)  # the suite pins fp32; a user has none


def choose(panel, precision: str) -> None:
    """The user unfolds the panel's advanced section and picks ``precision``."""
    if not panel.weights_section.expanded:
        panel.weights_section.button.click()
    combo = panel.precision_combo
    combo.setCurrentIndex(combo.findData(precision))
    combo.activated.emit(combo.currentIndex())


def test_bf16_loads_a_bf16_encoder_and_is_remembered(open_widget, small_image, tiny_checkpoint,
                                                     isolated_settings):
    viewer, widget = open_widget(small_image)
    panel = widget.model_panel
    auto_here = resolve_precision("auto", "cpu")
    assert panel.precision == "auto"  # nothing remembered yet
    assert panel.precision_combo.itemText(0) == f"auto (bf16 where fast: {auto_here} here)"
    choose(panel, "bf16")
    panel.select("tiny_sam", str(tiny_checkpoint), "cpu")
    panel.load_button.click()
    widget.wait()
    model = widget.predictor.model
    assert precision_of(model) == "bf16" and "|bf16|" in model_identity(model)
    assert "tiny_sam ready on cpu (bf16 encoder)" in widget.status_label.text()
    widget.prompts.add_points([(45, 60)], True)  # a click: the slice embedded in bf16
    widget.wait()
    assert len(widget.cache) == 1
    choose(panel, "fp32")  # another precision: loaded again at the next Load, as another model
    assert precision_of(widget.predictor.model) == "bf16"
    panel.load_button.click()
    widget.wait()
    assert precision_of(widget.predictor.model) == "fp32"
    widget.prompts.add_points([(50, 70)], True)
    widget.wait()
    assert len(widget.cache) == 2  # fp32 computed its own embedding, bf16's was not reused
    choose(panel, "bf16")
    viewer.close()
    _, reopened = open_widget(small_image)  # a new session's dock
    assert reopened.model_panel.precision == "bf16" == remembered_precision()
    assert any(isolated_settings.rglob("*.conf"))  # written in the test's folder


def test_everything_dock_reloads_for_another_precision(grid_everything):
    viewer, widget = grid_everything()
    choose(widget.model_panel, "bf16")
    widget.model_panel.load_button.click()  # Load, as a user would before a run
    widget.wait()
    assert widget.status_label.text() == "tiny_sam loaded (bf16 encoder)."
    widget.run()
    first = widget.model
    assert precision_of(first) == "bf16"
    choose(widget.model_panel, "fp32")
    results = widget.run()
    assert widget.model is not first and precision_of(widget.model) == "fp32"
    assert results[()].labels.shape == viewer.layers["cells"].data.shape


def test_a_scripted_choice_is_not_remembered_and_the_environment_wins(monkeypatch, notes):
    remember_precision("bf16")
    combo = PrecisionCombo()
    assert combo.precision == "bf16"
    combo.set_precision("fp32")  # a script's choice, e.g. set_model(..., precision="fp32")
    assert remembered_precision() == "bf16"
    monkeypatch.setenv(PRECISION_ENV, "fp32")  # the session's explicit request
    assert PrecisionCombo().precision == "fp32"
    monkeypatch.setenv(PRECISION_ENV, "half")  # a wrong one is said, the remembered used
    assert PrecisionCombo().precision == "bf16"
    assert notes[-1][0] == "warning" and PRECISION_ENV in notes[-1][1]
    with pytest.raises(ValueError, match="precision must be one of"):
        combo.set_precision("fp16")
