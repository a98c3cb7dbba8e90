"""Propagation through a z-stack or a time series: one object slice by slice, or every object
of a label slice with SAM 2's memory.

* :mod:`.walk`: :func:`iter_propagate` / :func:`propagate` (both directions from the seed);
* :mod:`.prompts`: the next slice's prompts from the last kept mask, and the stop rules;
* :mod:`.prefetch`: embeddings computed ahead in one background thread;
* :mod:`.result`: per-slice reports, the kept masks, undo-able label writes;
* :mod:`.upsample`: the kept mask at full size, computed only where it can be non-empty;
* :mod:`.memory`: every object of a label slice through the stack with SAM 2's memory
  (:class:`MemorySession`, :func:`iter_propagate_memory`; the video predictor of
  ``engine/video``), corrections on any frame; :mod:`.memory_result` its result.
"""
from __future__ import annotations

from .memory import MemorySession, is_memory_model, iter_propagate_memory, propagate_memory
from .memory_result import MemoryPropagationResult
from .prefetch import SliceStack
from .prompts import PromptOptions, StopRules
from .result import PropagationResult, SliceReport
from .walk import iter_propagate, iter_propagate_stack, propagate

__all__ = ["MemoryPropagationResult", "MemorySession", "PromptOptions", "PropagationResult",
           "SliceReport", "SliceStack", "StopRules", "is_memory_model", "iter_propagate",
           "iter_propagate_memory", "iter_propagate_stack", "propagate", "propagate_memory"]
