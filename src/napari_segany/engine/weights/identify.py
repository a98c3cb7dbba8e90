"""Which registered model a checkpoint's weights belong to.

Errors about a wrong file name the model to choose instead: a state dict is compared, key by
key and shape by shape, with every promptable architecture of the registry (built on the
meta device, so without memory), and a YOLOv8 state dict is told apart by its head and scale
(``ModelSpec.file_signature``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch.overrides import TorchFunctionMode

from ...models.registry import PROMPTABLE, REGISTRY, ModelSpec

#: One meta-device state dict per (builder, builder kwargs): shapes only, built once.
_META_SHAPES: dict[tuple, dict] = {}


def describe_checkpoint(obj, exclude: str = "") -> str:
    """One sentence naming the registered model(s) whose weights ``obj`` holds and saying to
    choose it, or "" when it matches none.  ``obj`` is what a reader returned (a state dict,
    a wrapped training checkpoint, an EfficientSAM ``{'model': sd}``...)."""
    names = matching_models(obj, exclude=exclude)
    if not names:
        return ""
    first = REGISTRY[names[0]]
    others = names[1:]
    also = f" (same architecture: {', '.join(others)})" if others else ""
    return f"It looks like {first.name} weights ({first.title}): choose {first.name}{also}."


def matching_models(obj, exclude: str = "") -> list[str]:
    """Registered models whose keys and shapes match ``obj``, in registry order.

    Promptable models are compared with a meta-device build (no memory), one build per
    architecture; a YOLOv8 state dict is matched by its head and scale
    (``ModelSpec.file_signature``).
    """
    if not isinstance(obj, Mapping):
        return []
    names: list[str] = []
    for specs in _architectures().values():
        if _fits_architecture(specs[0], obj):
            names += [s.name for s in specs]
    names += _yolo_models(obj)
    return [n for n in names if n != exclude]


def guess_model(state_dict: dict, exclude: str = "") -> str | None:
    """Name of the first registered model whose keys and shapes match ``state_dict``."""
    names = matching_models(state_dict, exclude=exclude)
    return names[0] if names else None


def compare_state_dicts(ours: dict, theirs: dict) -> tuple[list, list, list]:
    """Keys missing from ``theirs``, keys ``ours`` lacks, and ``"key (theirs) != (ours)"`` for
    tensors of another shape."""
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    wrong = [
        f"{k} {tuple(theirs[k].shape)} != {tuple(v.shape)}"
        for k, v in ours.items()
        if k in theirs and hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, wrong


def is_yolo_state_dict(obj: Mapping) -> bool:
    """True for a bare YOLOv8 state dict in the official key layout (``model.<i>.``...)."""
    return bool(obj) and all(
        isinstance(k, str) and re.match(r"^(model\.)?model\.\d+\.", k) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


def models_with_signature(config: Mapping) -> list[str]:
    """Ultralytics models whose ``file_signature`` the builder ``config`` of a file fits."""
    return [s.name for s in REGISTRY.values()
            if s.file_signature and all(config.get(k) == v for k, v in s.file_signature.items())]


def ultralytics_models(path) -> str:
    """"It holds FastSAM-s weights: choose fastsam_s." for an ultralytics file (read with the
    restricted unpickler), or "" when it cannot be told."""
    from .ultralytics_reader import read_ultralytics_checkpoint

    try:
        _, config = read_ultralytics_checkpoint(path)
    except Exception:
        return ""
    names = models_with_signature(config)
    if not names:
        return ""
    return f"It holds {REGISTRY[names[0]].title} weights: choose {' or '.join(names)}."


def prepare_architectures() -> None:
    """Build every registered architecture on the meta device now (shapes only, kept), so
    that a later identification only compares."""
    for specs in _architectures().values():
        try:
            _meta_shapes(specs[0])
        except Exception:  # a half-written sibling family must not stop the others
            continue


def _fits_architecture(spec: ModelSpec, obj: Mapping) -> bool:
    try:
        theirs = _normalised(spec, obj)
        ours = _meta_shapes(spec)
    except Exception:  # a half-written sibling family must not hide the real error
        return False
    return not any(compare_state_dicts(ours, theirs))


def _architectures() -> dict[tuple, list[ModelSpec]]:
    """Promptable specs grouped by what they build and how they read (micro-sam = SAM ViT-B)."""
    groups: dict[tuple, list[ModelSpec]] = {}
    for spec in REGISTRY.values():
        if spec.task != PROMPTABLE:
            continue
        key = (spec.builder, repr(sorted(dict(spec.builder_kwargs).items())), spec.key_mapper,
               spec.checkpoint_format)
        groups.setdefault(key, []).append(spec)
    return groups


def _meta_shapes(spec: ModelSpec) -> dict:
    key = (spec.builder, repr(sorted(dict(spec.builder_kwargs).items())))
    if key not in _META_SHAPES:
        with _ShapesOnly():
            state = spec.build().state_dict()
        _META_SHAPES[key] = {k: torch.empty(v.shape, dtype=v.dtype, device="meta")
                             for k, v in state.items()}  # shapes only, no memory kept
    return _META_SHAPES[key]


class _ShapesOnly(TorchFunctionMode):
    """A network built for its shapes only: in-place fills (initialisation) and random
    tensors are skipped, so its memory is allocated but never written (the pages stay
    untouched: a ViT-H costs no RSS) and the build takes milliseconds.  (The meta device
    would run ``randn`` and scalar arithmetic through Python decompositions whose first use
    imports seconds of modules.)"""

    MAKERS = {torch.randn, torch.rand, torch.randn_like, torch.rand_like}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):  # uniform_, kaiming_normal_...
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor):
                return target  # an in-place fill: the shape does not change
        if func in self.MAKERS:
            like = func in (torch.randn_like, torch.rand_like)
            return torch.empty_like(args[0]) if like else torch.empty(*args, dtype=kwargs.get("dtype"))
        return func(*args, **kwargs)


def _normalised(spec: ModelSpec, obj: Mapping) -> dict:
    """``obj`` in the key layout of ``spec``'s network (its format's wrappers undone)."""
    from .readers import FORMATS

    return spec.map_keys(FORMATS[spec.checkpoint_format].unwrap(obj))


def _yolo_models(obj: Mapping) -> list[str]:
    """Ultralytics models whose ``file_signature`` fits a bare YOLOv8 state dict."""
    if not is_yolo_state_dict(obj):
        return []
    from .ultralytics_reader import config_from_state_dict

    try:
        config = config_from_state_dict({k.removeprefix("model.") if k.startswith("model.model.")
                                         else k: v for k, v in obj.items()})
    except Exception:
        return []
    return models_with_signature(config)
