"""What the Segment Anything dock shows while it works: the progress bar, its Cancel button
and the status line, for the model load and the embedding of a slice."""
from __future__ import annotations

from typing import Callable

from ...engine.errors import SegAnyError
from ..shared import notify

COMPUTING = "Computing the image embedding (the viewer stays usable)."


class Activity:
    """Progress bar, Cancel and status line of the model load and the embedding jobs."""

    def __init__(self, job_progress, model_panel, model, say: Callable[[str], None]):
        self.job_progress, self.progress = job_progress, job_progress.bar
        self.model_panel, self.model, self.say = model_panel, model, say
        self.embedding = False

    # ---------------------------------------------------------------- the model
    def model_loading(self, name: str) -> None:
        self.model_panel.set_busy(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # indeterminate: reading a file has no steps
        self.say(f"Loading {name}…")

    def model_done(self) -> None:
        self.model_panel.set_busy(False)
        self.progress.setRange(0, 100)
        self.progress.setVisible(self.embedding)
        self.model_panel.update_info()

    def model_failed(self, message: str) -> None:
        self.model_done()
        still = self.model.name
        self.say(f"Could not load the model; {still} is still in use." if still
                 else "No model loaded.")

    # ---------------------------------------------------------------- the embedding
    def embedding_busy(self, busy: bool) -> None:
        was = self.embedding
        self.embedding = busy
        self.job_progress.set_busy(busy, bar_visible=busy or self.model.busy)
        if busy:
            self.progress.setFormat("Computing the image embedding… %p%")
            self.say(COMPUTING)
        elif was:  # done (a cancel or a failure says so right after)
            self.say("The slice is embedded: click on an object, or draw a box.")

    def embedding_progress(self, fraction: float) -> None:
        self.job_progress.show_fraction(fraction)

    def embedding_failed(self, exc: Exception) -> None:
        self.say("The embedding failed; nothing was written.")
        hint = "" if isinstance(exc, SegAnyError) else " Try a smaller image or another device."
        notify.error(f"Could not compute the image embedding: {exc}.{hint}")

    def embedding_cancelled(self) -> None:
        self.say("Embedding cancelled; the prompts are kept. Click again (or Compute "
                 "embedding) to embed this slice.")
        notify.info("Embedding cancelled.")
