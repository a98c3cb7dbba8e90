"""``load_model``: build a registered network and load its weights strictly and safely.

The weights come from the caller (a path or a state dict), the cache folder, or a download
(:mod:`.cache`); files are read by the reader of the spec's ``checkpoint_format``
(:mod:`.readers`); a mismatch is explained in user terms (:mod:`.identify`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch

from ...models.precision import set_encoder_precision
from ...models.registry import ModelSpec, get_spec
from ..precision import resolve_precision
from ..errors import CheckpointError, WeightsNotFoundError
from .cache import cached_path, fetch_checkpoint
from .identify import compare_state_dicts, describe_checkpoint
from .meta_build import building_on_meta
from .readers import FORMATS, read_checkpoint
from .safe_load import read_into_memory

logger = logging.getLogger("napari_segany")


def default_device() -> torch.device:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(name: str | ModelSpec, checkpoint=None, device=None,
               precision: str = "fp32") -> torch.nn.Module:
    """Build a registered model and load its official weights, strictly and safely.

    Args:
        name: a registry name (see ``napari_segany.list_models()``) or a ModelSpec.
        checkpoint: None (cache folder, then download), a path to the official file, or a
            state dict in the official key layout.  SAM-family state dicts may also be
            wrapped as training checkpoints (``{'model_state': {'sam.<key>': ...}}``,
            micro-sam / torch_em; see ``models.sam.keys``).
        device: torch device or string; None picks cuda, then mps, then cpu.
        precision: the encoder's precision: "fp32" (default: the exact path the parity tests
            check), "bf16", or "auto" (bf16 where the hardware runs it fast: AMX-BF16 CPUs,
            bf16 CUDA; see :func:`napari_segany.engine.precision.resolve_precision`).  The
            decoder runs in float32, except everything mode's batched decoding of a bf16
            SAM / MobileSAM (``engine/everything/batch_network.py``); ``model.precision``
            says what was chosen.

    Returns:
        The network in eval mode, with ``.spec`` (its ModelSpec) and ``.checkpoint_path``.
    """
    spec = get_spec(name)
    state_dict, config, source = _resolve_weights(spec, checkpoint)
    # The tensors of a file we read are ours: the network is built without weights
    # (meta device) and takes them over, so loading holds one copy of the weights, not two,
    # and skips the random initialization.  A caller's state dict is copied, never taken over.
    owned = not isinstance(checkpoint, Mapping)
    model = _build(spec, config, source, empty=owned and BUILD_ON_META)
    empty = _on_meta(model)
    load_weights(model, spec, state_dict, source, consume=True, assign=empty)
    del state_dict
    if empty and _on_meta(model):  # a tensor the file does not hold was made at build time
        model = _rebuilt_with(model.state_dict(), spec, config, source)
    model = model.float().eval()
    prepare = getattr(model, "prepare_for_inference", None)
    if callable(prepare):
        prepare()  # e.g. Conv+BN fusion, attention-bias gathering
    model.spec = spec
    model.checkpoint_path = source
    target = torch.device(device) if device is not None else default_device()
    set_encoder_precision(model, resolve_precision(precision, target))
    return model.to(target)


def _build(spec: ModelSpec, config: dict, source: str, empty: bool) -> torch.nn.Module:
    """The network; with ``empty``, its parameters on the meta device (no memory, no init)."""
    try:
        if empty:
            try:
                with building_on_meta():
                    return spec.build(**config)
            except (RuntimeError, NotImplementedError):
                pass  # a builder that computes with tensor values: built the usual way
        return spec.build(**config)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{source} does not describe a {spec.name} network: {exc}") from None


#: A network whose weights come from a file we read is built on the meta device
#: (:mod:`.meta_build`): no random initialization, one copy of the weights at the peak
#: (mobile_sam: 49 MB of growth instead of 91, ViT-B 381 MB instead of 758; docs/benchmarks.md).
#: False builds the usual way (the tests compare the two).
BUILD_ON_META = True


def _on_meta(model: torch.nn.Module) -> bool:
    """Whether any tensor of the network is on the meta device: its parameters and buffers,
    and tensors kept as plain attributes (which no state dict holds)."""
    for module in model.modules():
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False),
                   *(v for v in vars(module).values() if isinstance(v, torch.Tensor))]
        if any(t.is_meta for t in tensors):
            return True
    return False


def _rebuilt_with(state: dict, spec: ModelSpec, config: dict, source: str) -> torch.nn.Module:
    """The network built the usual way (its non-persistent buffers computed), then loaded."""
    model = _build(spec, config, source, empty=False)
    model.load_state_dict(state, strict=True)
    return model


def _config_of_state_dict(spec: ModelSpec, state_dict) -> dict:
    """Builder settings a bare state dict implies (its format says which: YOLOv8's widths and
    depths live in the file's pickle, a state dict has to show them)."""
    fmt = FORMATS[spec.checkpoint_format]
    try:
        return fmt.config_of(dict(state_dict))
    except CheckpointError as exc:
        found = describe_checkpoint(state_dict, exclude=spec.name)
        raise CheckpointError(
            f"The given state dict is not a {spec.name} ({fmt.kind}) state dict: {exc}"
            + (f" {found}" if found else "")
        ) from None


def _resolve_weights(spec: ModelSpec, checkpoint) -> tuple[dict, dict, str]:
    if isinstance(checkpoint, Mapping):
        return dict(checkpoint), _config_of_state_dict(spec, checkpoint), "the given state dict"
    if checkpoint is None:
        path = fetch_checkpoint(spec)
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"Checkpoint file {path} not found. Give the path to {spec.file_name}, or "
                f"leave checkpoint empty to use {cached_path(spec)}."
            )
    if not spec.sha256:
        logger.info("%s: no published sha256, %s is unverified (keys and shapes are checked)",
                    spec.name, path)
    with read_into_memory():  # the network takes these tensors over (load_model)
        state_dict, config = read_checkpoint(spec, path)
    return state_dict, config, str(path)


def load_weights(model: torch.nn.Module, spec: ModelSpec, state_dict: dict, source: str,
                 consume: bool = False, assign: bool = False) -> None:
    """Strictly load an official-layout state dict; explain mismatches in user terms.

    ``consume=True`` (the caller owns ``state_dict``): the dict is emptied and each part of the
    file is released once copied.  ``assign=True`` (with ``consume``; a network built on the
    meta device): the network takes the tensors over instead of copying them, so loading
    holds one copy of the weights (ViT-H: 2.5 GB instead of 5 GB at the peak).
    """
    try:
        mapped = spec.map_keys(state_dict)
    except (KeyError, ValueError, TypeError) as exc:
        found = describe_checkpoint(state_dict, exclude=spec.name)
        hint = f" {found}" if found else ""
        raise CheckpointError(f"{source} is not a {spec.name} checkpoint: {exc}.{hint}") from None
    missing, unexpected, wrong_shape = compare_state_dicts(model.state_dict(), mapped)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(spec, source, state_dict, missing, unexpected,
                                                wrong_shape))
    if not consume:
        model.load_state_dict(mapped, strict=True)
        return
    mapped = dict(mapped)  # map_keys may return state_dict itself: never empty what we load
    state_dict.clear()
    for group in _module_groups(mapped):
        # strictness was checked above on the whole dict; load_state_dict keeps the modules'
        # own loading hooks
        part = {key: mapped.pop(key) for key in group}
        if assign:  # the network's tensors become these: dense, as a built network's are
            part = {key: value.contiguous() for key, value in part.items()}
        model.load_state_dict(part, strict=False, assign=assign)


def _module_groups(mapped: dict, depth: int = 3) -> list[list[str]]:
    """The keys grouped by their first ``depth`` name parts (e.g. one transformer block)."""
    groups: dict[str, list[str]] = {}
    for key in mapped:
        groups.setdefault(".".join(key.split(".")[:depth]), []).append(key)
    return list(groups.values())


def _mismatch_message(spec, source, state_dict, missing, unexpected, wrong_shape) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors of the wrong shape (e.g. {wrong_shape[0]})")
    found = describe_checkpoint(state_dict, exclude=spec.name)
    hint = f" {found}" if found else f" Use the official file {spec.file_name}."
    return f"{source} does not hold {spec.name} weights: " + "; ".join(parts) + "." + hint
