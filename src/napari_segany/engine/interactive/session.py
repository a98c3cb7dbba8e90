"""The objects being segmented on one image, decoded as their prompts change.

:class:`InteractiveSession` decodes only the objects whose prompts changed, feeds an object's
previous low-res logits back as ``mask_input`` when points were added to it (SAM's
iterative refinement), and upsamples only the candidate that is shown (best score unless
the user cycles).  Objects come from :func:`.objects.group_prompts`; masks are kept as a
bounding box + crop (:mod:`.masks`); commits follow :mod:`.commit`.

All coordinates here are x, y pixels of the 2D slice (SAM convention); masks and bounding
boxes are (row, col) arrays.  The napari side converts with :mod:`.prompts`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .masks import ObjectMask
from .objects import ObjectPrompt
from .protocol import Decoded, PromptablePredictor


@dataclass
class _ObjectState:
    prompt: ObjectPrompt
    decoded: Decoded  # every candidate, as the predictor keeps them (e.g. low-res logits)
    scores: np.ndarray  # (M,)
    choice: int | None = None  # the user's candidate; None = best score
    mask: ObjectMask | None = None

    @property
    def shown(self) -> int:
        return int(np.argmax(self.scores)) if self.choice is None else self.choice % len(self.scores)


@dataclass(frozen=True)
class DecodeResult:
    """The objects after a decode (see :meth:`InteractiveSession.decode`)."""

    objects: dict
    changed: list


class InteractiveSession:
    """The objects being segmented on one embedded slice, with any promptable predictor
    (:class:`~.protocol.PromptablePredictor`: one image, a tiled image, FastSAM's selection).

    ``multimask``: ``"auto"`` (three candidates for a single click or a lone box, where the
    prompt is ambiguous; one mask once more prompts disambiguate, as SAM recommends),
    True or False.
    ``refine_with_mask``: feed the logits the user saw back as ``mask_input`` when prompts are
    added to an object (SAM's iterative refinement); ignored by models without mask prompts.
    """

    def __init__(self, predictor: PromptablePredictor, multimask: str | bool = "auto",
                 refine_with_mask: bool = True):
        self.predictor = predictor
        self.multimask = multimask
        self.refine_with_mask = refine_with_mask
        self._objects: dict[tuple, _ObjectState] = {}
        self.active_key: tuple | None = None

    # -- prompts
    def set_prompts(self, prompts: Sequence[ObjectPrompt]) -> list[tuple]:
        """Make the objects follow ``prompts``; decode those that changed; return their keys."""
        return self.apply(self.decode(prompts))

    def decode(self, prompts: Sequence[ObjectPrompt]) -> DecodeResult:
        """Decode what changed, without changing the session (safe in a worker thread while
        the main thread reads the session); :meth:`apply` makes it current."""
        objects, changed = {}, []
        current = dict(self._objects)
        for prompt in prompts:
            old = current.get(prompt.key)
            if old is not None and old.prompt.signature() == prompt.signature():
                objects[prompt.key] = old
                continue
            objects[prompt.key] = self._decode(prompt, old)
            changed.append(prompt.key)
        return DecodeResult(objects, changed)

    def apply(self, result: DecodeResult) -> list[tuple]:
        self._objects = result.objects
        if result.changed:
            self.active_key = result.changed[-1]
        elif self.active_key not in self._objects:
            self.active_key = next(reversed(self._objects), None)
        return result.changed

    def clear(self) -> None:
        self._objects = {}
        self.active_key = None

    @property
    def masks(self) -> list[ObjectMask]:
        return [state.mask for state in self._objects.values()]

    def mask_of(self, key: tuple) -> ObjectMask | None:
        state = self._objects.get(key)
        return None if state is None else state.mask

    # -- candidates
    def cycle_candidate(self, step: int = 1, key: tuple | None = None) -> ObjectMask | None:
        """Show the next of the object's candidates (the active object by default)."""
        state = self._objects.get(self.active_key if key is None else key)
        if state is None or len(state.scores) < 2:
            return None if state is None else state.mask
        state.choice = (state.shown + step) % len(state.scores)
        state.mask = self._upsample(state)
        return state.mask

    # -- internals
    def _multimask_for(self, prompt: ObjectPrompt) -> bool:
        if self.multimask == "auto":
            return prompt.n_prompts == 1
        return bool(self.multimask)

    def _feeds_back(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> bool:
        """Whether this decode refines the previous one with its logits as mask_input."""
        return (previous is not None and self.refine_with_mask
                and self.predictor.spec.supports_mask_input and prompt.extends(previous.prompt))

    def _decode(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> _ObjectState:
        feedback, candidate = None, 0
        if self._feeds_back(prompt, previous):
            # Refine what the user saw: SAM's iterative refinement (mask_input).
            feedback, candidate = previous.decoded, previous.shown
        points = prompt.points_xy if len(prompt.labels) else None
        labels = prompt.labels if len(prompt.labels) else None
        decoded = self.predictor.decode(points, labels, prompt.box, self._multimask_for(prompt),
                                        previous=feedback, candidate=candidate)
        state = _ObjectState(prompt, decoded, np.asarray(decoded.scores, np.float32))
        state.mask = self._upsample(state)
        return state

    def _upsample(self, state: _ObjectState) -> ObjectMask:
        """The shown candidate only, as a bounding box and the crop inside it."""
        index = state.shown
        bbox, crop = self.predictor.mask(state.decoded, index)
        return ObjectMask(state.prompt.key, bbox, crop, float(state.scores[index]), index,
                          len(state.scores))
