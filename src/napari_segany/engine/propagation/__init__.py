"""Propagation of one object slice by slice through a z-stack or a time series.

* :mod:`.walk`: :func:`iter_propagate` / :func:`propagate` (both directions from the seed);
* :mod:`.prompts`: the next slice's prompts from the last kept mask, and the stop rules;
* :mod:`.prefetch`: embeddings computed ahead in one background thread;
* :mod:`.result`: per-slice reports, the kept masks, undo-able label writes;
* :mod:`.upsample`: the kept mask at full size, computed only where it can be non-empty.
"""
from __future__ import annotations

from .prefetch import SliceStack
from .prompts import PromptOptions, StopRules
from .result import PropagationResult, SliceReport
from .walk import iter_propagate, iter_propagate_stack, propagate

__all__ = ["PromptOptions", "PropagationResult", "SliceReport", "SliceStack", "StopRules",
           "iter_propagate", "iter_propagate_stack", "propagate"]
