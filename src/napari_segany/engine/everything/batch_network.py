"""The network everything mode decodes its prompt batches with.

A model loaded with ``precision="bf16"`` decodes its batches with its bfloat16 decoding
twin (:func:`napari_segany.models.precision.bf16_decoding_twin`): there the matmuls span
(prompts x 4096 image tokens x 256) and AVX512-BF16 / AMX run them faster, while a single
click stays on the model's float32 decoder.  Networks that declare no bfloat16 decoder
parts, and float32 models, decode with the model itself (bit for bit as before).

One twin per model, made on first use and dropped with the model (a weak-key table);
the lock makes the decoder pool's threads share one twin.
"""
from __future__ import annotations

import threading
import weakref

from torch import nn

from ...models.precision import bf16_decoding_twin, precision_of

_TWINS: "weakref.WeakKeyDictionary[nn.Module, nn.Module | None]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def batch_network(model: nn.Module) -> nn.Module:
    """``model``'s bfloat16 decoding twin if ``model`` is bf16 and has one, else ``model``."""
    if precision_of(model) != "bf16":
        return model
    with _LOCK:
        if model not in _TWINS:
            # None (not the model) for "no twin": a value must not keep its key alive
            _TWINS[model] = bf16_decoding_twin(model)
        twin = _TWINS[model]
    return model if twin is None else twin
