"""The model of the Segment Anything dock: loaded in a worker, then the predictor all image
sessions decode with (SAM-like, or FastSAM's selection among its masks).

:class:`ModelSlot` emits ``loading(name)``, then ``loaded(predictor)`` or
``failed(message)``; a failed load keeps the previous model.  A weights file is checked
before anything is built (:mod:`..shared.file_check`); a refusal already said when the file
was chosen is not said again.
"""
from __future__ import annotations

from qtpy.QtCore import QObject, Signal

from ...engine.errors import SegAnyError
from ...engine.tiling import predictor_for
from ...engine.weights import RefusedFile
from ..shared import notify
from ..shared.workers import alive_only, start_model_load


class ModelSlot(QObject):
    """The loaded predictor (None before the first load) and the load in progress."""

    loading = Signal(str)
    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, file_checks, parent=None):
        super().__init__(parent)
        self.file_checks = file_checks  # the verdicts on the chosen files, said once
        self.predictor = None
        self.worker = None
        self.closed = False  # set when the dock closes: a late load result is dropped
        self._warned_missing = False

    @property
    def busy(self) -> bool:
        return self.worker is not None

    @property
    def name(self) -> str | None:
        return None if self.predictor is None else self.predictor.spec.name

    def load(self, name: str, checkpoint: str = "", device: str = "",
             precision: str = "fp32") -> None:
        """Load registry model ``name`` (from ``checkpoint``, else the cache) in a worker,
        its encoder in ``precision`` ("auto", "fp32", "bf16")."""
        if self.worker is not None:
            notify.info("A model is already loading; wait for it to finish.")
            return
        self.loading.emit(name)
        self.worker = start_model_load(
            name, checkpoint or None, device or None, where=self.file_checks.where,
            precision=precision,
            on_done=alive_only(self, self.install),
            on_error=alive_only(self, lambda exc: self._failed(exc, name, checkpoint)))

    def install(self, model) -> None:
        """Use ``model`` (what the loading worker hands back, or one loaded by a script)."""
        self.worker = None
        self.predictor = predictor_for(model)  # FastSAM: prompts select among its masks
        self.loaded.emit(self.predictor)

    def require(self) -> bool:
        """A model is loaded; if not, say so once (every click would repeat it)."""
        if self.predictor is not None:
            return True
        if self.worker is None and not self._warned_missing:
            self._warned_missing = True
            notify.warning("Load a model first (Model > Load model); the prompts are kept.")
        return False

    def _failed(self, exc: Exception, name: str, checkpoint: str) -> None:
        self.worker = None
        self._warned_missing = True  # the user knows there is no model: clicks stay quiet
        message = str(exc) if isinstance(exc, SegAnyError) else f"Could not load the model: {exc}"
        if isinstance(exc, RefusedFile):
            self.file_checks.announce(name, checkpoint, message)  # once per file and model
        else:
            notify.error(message)
        self.failed.emit(message)
