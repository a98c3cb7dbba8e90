"""Interactive segmentation of a tiled image: :class:`InteractiveSession` on a TiledPredictor.

Same objects, candidates, cycling and ``mask_input`` feedback as the untiled session (the
feedback only when the refined prompt stays in the same single tile); each decode embeds
the tiles it needs on first use, and masks come back as bounding box + crop, so nothing of
image size is ever allocated.
"""
from __future__ import annotations

from ..interactive import InteractiveSession, ObjectMask, ObjectPrompt
from ..interactive.session import _ObjectState


class TiledSession(InteractiveSession):
    """The objects being segmented on one large slice held by a :class:`TiledPredictor`."""

    def _decode(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> _ObjectState:
        feedback, candidate = None, 0
        if self._feeds_back(prompt, previous):
            feedback, candidate = previous.low_res, previous.shown  # the logits the user saw
        has_points = len(prompt.labels) > 0
        logits = self.predictor.decode(
            prompt.points_xy if has_points else None, prompt.labels if has_points else None,
            prompt.box, self._multimask_for(prompt), previous=feedback, candidate=candidate)
        state = _ObjectState(prompt, logits, logits.scores)
        state.mask = self._upsample(state)
        return state

    def _upsample(self, state: _ObjectState) -> ObjectMask:
        index = state.shown
        bbox, crop = self.predictor.mask(state.low_res, index)
        return ObjectMask(state.prompt.key, bbox, crop, float(state.scores[index]), index,
                          len(state.scores))
