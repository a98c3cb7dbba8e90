"""Encoder precision: run a model's encoder in bfloat16, everything else in float32.

:func:`set_encoder_precision` casts the weights of a model's *encoder* (``image_encoder`` of
SAM / MobileSAM / EfficientSAM; the whole network of a YOLOv8) to bfloat16, except the
tensors accuracy needs in float32:

* normalisation parameters (LayerNorm, LayerNorm2d, BatchNorm): the CPU kernels take
  bfloat16 activations with float32 affine parameters and compute mean/variance in float32;
* positional tables (``pos_embed``, ``rel_pos_h``/``rel_pos_w``, TinyViT's
  ``attention_biases``, Hiera's ``pos_embed_window``): they are resampled / gathered in float32 and cast where they are used;
* YOLO's DFL kernel: boxes are decoded in float32 (bfloat16 steps are 4-8 px at 1024).

There is no autocast and no global state: every encoder reads its compute dtype from its own
weights, casts its input at entry and returns its output in the *input's* dtype, so the
engine (which feeds float32) gets float32 embeddings / head outputs whatever the precision;
decoders, caches and post-processing never see bfloat16.  In float32 every added cast is
``Tensor.to`` of a tensor that already has that dtype, which returns the tensor itself: the
float32 path computes exactly what it computed before.

The chosen precision is recorded as ``model.precision`` ("fp32" or "bf16"), e.g. for an
embedding-cache key.  bfloat16 rounding cannot be undone: to go back to float32, load the
model again.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .sam.common import LayerNorm2d
from .yolo.blocks import DFL

#: Accepted precisions and their compute dtypes.
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

#: Modules whose parameters and buffers stay float32 (see the module docstring).
KEEP_FP32_MODULES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, LayerNorm2d, nn.BatchNorm2d, DFL,
)
#: Parameter names that stay float32 wherever they appear (positional tables).
KEEP_FP32_NAMES = frozenset({"pos_embed", "pos_embed_window", "rel_pos_h", "rel_pos_w",
                             "attention_biases"})


def encoder_of(model: nn.Module) -> nn.Module:
    """The part of ``model`` that runs once per image: ``image_encoder`` or the model itself."""
    return getattr(model, "image_encoder", model)


def precision_of(model: nn.Module) -> str:
    """The precision of ``model``'s encoder: "fp32" unless :func:`set_encoder_precision`
    changed it (what an embedding-cache key should include)."""
    return getattr(model, "precision", "fp32")


def set_encoder_precision(model: nn.Module, precision: str) -> nn.Module:
    """Run ``model``'s encoder in ``precision`` ("fp32" or "bf16"); returns ``model``.

    In place.  "bf16" casts the encoder's weights (see the module docstring for what stays
    float32) and, for YOLOv8 networks, switches them to channels-last memory (oneDNN's
    bfloat16 convolutions work in NHWC and would otherwise reorder every activation).
    Requesting the current precision changes nothing.  Raises ValueError for an unknown
    precision, or for "fp32" on a model already rounded to bfloat16 (load it again).
    """
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}.")
    current = precision_of(model)
    if precision == current:
        return model
    if current != "fp32":
        raise ValueError(
            f"This model's encoder was rounded to {current}; load the model again for {precision}."
        )
    encoder = encoder_of(model)
    _cast_module(encoder, DTYPES[precision])
    if precision == "bf16" and callable(getattr(encoder, "set_channels_last", None)):
        encoder.set_channels_last(True)
    model.precision = precision
    return model


def bf16_decoding_twin(model: nn.Module) -> nn.Module | None:
    """A copy of ``model`` whose ``decode`` computes the parts named by the network's
    ``bf16_decoder_parts`` in bfloat16 (norms and positional tables kept float32, as in
    the encoder); None for a network that declares none (its decoder stays float32).

    For everything mode's batched decoding, where each part's matmuls span the 4096 image
    tokens of every prompt; a single click gains nothing from bfloat16 (too small), so the
    model's own decoder stays float32.  Only the decoder module holding the parts is copied
    (a few MB); the encoder and every other child are shared with ``model``.  The network
    code casts at the parts' edges and returns float32 logits and IoUs.
    """
    parts = getattr(model, "bf16_decoder_parts", ())
    if not parts:
        return None
    copied = {part.split(".")[0] for part in parts}
    # deepcopy reuses what the memo maps: the shared children and tensors are not copied
    memo = {id(child): child for name, child in model.named_children() if name not in copied}
    memo.update({id(t): t for t in (*model._parameters.values(), *model._buffers.values())})
    with torch.inference_mode(False):  # plain tensors even when asked inside inference_mode
        twin = copy.deepcopy(model, memo)
        for part in parts:
            _cast_module(twin.get_submodule(part), torch.bfloat16)
    return twin.eval()


def _cast_module(encoder: nn.Module, dtype: torch.dtype) -> None:
    """Cast floating parameters/buffers of ``encoder`` (or of a decoder part) to ``dtype``,
    except the kept ones.

    ``param.data`` is replaced (not the Parameter), so references to the parameters stay
    valid; version-keyed caches (TinyViT's folded weights) see the new dtype and rebuild.
    """
    kept = {id(sub) for module in encoder.modules() if isinstance(module, KEEP_FP32_MODULES)
            for sub in module.modules()}  # a kept module's children too (DFL's conv)
    with torch.no_grad():
        for module in encoder.modules():
            if id(module) in kept:
                continue
            for name, param in module.named_parameters(recurse=False):
                if param.is_floating_point() and name not in KEEP_FP32_NAMES:
                    param.data = param.data.to(dtype)
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and buf.is_floating_point():
                    setattr(module, name, buf.to(dtype))

