"""Model loading of the Segment Anything widget: a registry model loads in a worker, then
becomes the predictor and session that decode the prompts (SAM-like, or FastSAM's selection).

A mixin of ``SegAnyWidget``: these methods set its ``predictor`` and ``session`` and report
in its progress bar and status line.
"""
from __future__ import annotations

from napari.utils.notifications import show_error, show_info, show_warning

from ..engine.errors import SegAnyError
from ..engine.interactive import InteractiveSession
from ..engine.tiling import predictor_for
from .workers import alive_only, start_model_load


class ModelLoading:
    """Load a model in a worker, install it, and say when there is none."""

    def _load_model(self, name: str, checkpoint: str, device: str) -> None:
        if self._model_worker is not None:
            show_info("A model is already loading; wait for it to finish.")
            return
        self.model_panel.set_busy(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # indeterminate: reading a file has no steps
        self.status_label.setText(f"Loading {name}…")
        self._model_worker = start_model_load(
            name, checkpoint or None, device or None,
            on_done=alive_only(self, self._model_loaded),
            on_error=alive_only(self, self._model_failed))

    def _model_loaded(self, model) -> None:
        self._model_done()
        self._forget_objects()
        self._offer_refinement(model.spec)
        self.predictor = predictor_for(model)  # FastSAM: prompts select among its masks
        self.session = InteractiveSession(self.predictor,
                                          refine_with_mask=self.refine_check.isChecked())
        self.embeddings.set_predictor(self.predictor)
        self._embedded_key = None
        self.status_label.setText(f"{model.spec.name} ready on {self.predictor.device}: click "
                                  "on an object (Points layer), or draw a box (Shapes layer).")
        self.model_panel.update_info()
        self._schedule_decode()

    def _offer_refinement(self, spec) -> None:
        """Mask-prompt refinement exists only for models that take a mask prompt."""
        supported = spec.supports_mask_input
        self.refine_check.setEnabled(supported)
        self.refine_check.setChecked(supported)
        if not supported:
            self.refine_check.setToolTip(f"{spec.name} takes no mask prompt: each decode uses "
                                         "the points and boxes only.")

    def _on_refine_toggled(self, checked: bool) -> None:
        sessions = (self.session, getattr(self.store_panel, "session", None))
        for session in sessions:
            if session is not None:
                session.refine_with_mask = bool(checked)

    def _model_failed(self, exc: Exception) -> None:
        self._model_done()
        still = self.predictor.spec.name if self.predictor is not None else None
        self.status_label.setText(f"Could not load the model; {still} is still in use." if still
                                  else "No model loaded.")
        show_error(f"Could not load the model: {exc}" if not isinstance(exc, SegAnyError)
                   else str(exc))

    def _model_done(self) -> None:
        self._model_worker = None
        self.model_panel.set_busy(False)
        self.progress.setRange(0, 100)
        self.progress.setVisible(self.embeddings.job is not None)

    def _require_model(self) -> bool:
        """A model is loaded; if not, say so once (the prompts are kept for it)."""
        if self.predictor is not None:
            return True
        if self._model_worker is None and not self._warned_no_model:
            self._warned_no_model = True  # once: every click would repeat it
            show_warning("Load a model first (Model > Load model); the prompts are kept.")
        return False
