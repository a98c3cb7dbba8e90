"""Safe readers for the official checkpoint files, chosen by ``ModelSpec.checkpoint_format``.

Nothing here executes pickled code: plain state dicts go through
``torch.load(..., weights_only=True)`` (plus a small explicit allowlist of numpy number
types, see :data:`BENIGN_GLOBALS`); ultralytics pickles through the restricted unpickler of
:mod:`.ultralytics_reader`.  Every reader returns ``(state_dict, config)`` where ``config``
holds builder keyword arguments recovered from the file (empty for SAM).

When a file is refused or does not fit the chosen model, the error says what the file is
(:func:`describe_checkpoint`: which registered model's weights it holds, or what kind of
pickle it is) and which model to choose instead.
"""
from __future__ import annotations

import io
import logging
import pickle
import pickletools
import re
import threading
import zipfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch

from ..models.registry import PROMPTABLE, REGISTRY, ModelSpec
from .errors import CheckpointError

Reader = Callable[[Path], tuple[dict, dict]]
logger = logging.getLogger("napari_segany")

#: Pickle globals a weights-only load may resolve beyond torch's defaults: numpy number
#: scalars and their dtypes, which training loops leave in checkpoints (a metric, a best
#: score).  They only rebuild numbers.  A file naming anything else is refused.
BENIGN_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype")
_NUMERIC_DTYPES = ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "?")
_ALLOWLIST_LOCK = threading.Lock()
_ULTRALYTICS_CHOICES = "fastsam_s, fastsam_x or mobilesamv2_objectaware"
_NETWORK_PACKAGES = ("segment_anything", "mobile_sam", "efficient_sam", "torch.nn.modules")
_TRAINING_PACKAGES = ("micro_sam", "torch_em")


# ----------------------------------------------------------------------------- safe loading


def safe_torch_load(source, name=None) -> Any:
    """``torch.load(weights_only=True)`` with errors that say what the file is and what to do.

    ``source`` is a path or a binary file object (``name`` then names it in messages).
    Numpy number scalars (:data:`BENIGN_GLOBALS`) are allowed; any other pickled object is
    refused by name, and nothing in the file is executed.
    """
    name = name or source
    allowed: set[str] = set()
    for _ in range(len(BENIGN_GLOBALS) + 1):  # a legacy file names one refused global at a time
        try:
            with _allowlisted(allowed):
                return _weights_only_load(source)
        except pickle.UnpicklingError as exc:
            refused = unsafe_globals(source, exc)
            new = set(refused) - allowed
            if not new or not new <= set(BENIGN_GLOBALS):
                raise CheckpointError(refusal_message(source, name, refused, exc)) from None
            allowed |= new
        except Exception as exc:  # torch raises RuntimeError, KeyError, EOFError... on bad bytes
            archive = _plain_zip_members(source)
            if archive is not None:
                raise CheckpointError(_zip_message(name, archive)) from None
            raise CheckpointError(
                f"Could not read {name}: the file is truncated or corrupt, e.g. an incomplete "
                f"download ({_first_line(exc)}). Delete it and download it again."
            ) from None
    raise CheckpointError(f"Refused to load {name}: too many pickled objects. Nothing was executed.")


def _plain_zip_members(source) -> list[str] | None:
    """Members of an ordinary zip archive (not a torch checkpoint), else None."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
    except Exception:
        return None
    return None if any(n.endswith("data.pkl") for n in names) else names


def _zip_message(name, members: list[str]) -> str:
    released = sorted({Path(m).name for m in members} & {"efficient_sam_vits.pt", "efficient_sam_vitt.pt"})
    if released:
        model = released[0].removesuffix(".pt")
        return (f"{name} is a zip archive holding {released[0]} (the EfficientSAM release), not "
                f"a state dict: choose {model}, which reads the archive as it is.")
    shown = ", ".join(members[:5]) + (", ..." if len(members) > 5 else "")
    return (f"{name} is a zip archive ({shown}), not a PyTorch checkpoint: extract the weight "
            "file and give that instead.")


def _weights_only_load(source) -> Any:
    if hasattr(source, "seek"):
        source.seek(0)
    return torch.load(source, map_location="cpu", weights_only=True)


def _benign_objects(names) -> list:
    """``safe_globals`` entries for the allowlisted names (numpy only imported when needed)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    objects: list = []
    for global_name in names:
        if global_name.endswith(".scalar"):
            objects.append((scalar, global_name))
        elif global_name == "numpy.dtype":
            objects.append((np.dtype, global_name))
    # a scalar carries its dtype, whose pickled state is set on the dtype's class (BUILD)
    objects += [type(np.dtype(c)) for c in _NUMERIC_DTYPES]
    return objects


def _global_name(entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


@contextmanager
def _allowlisted(names: set[str]):
    """Allow ``names`` for this load only, leaving torch's process-wide allowlist as it was
    (entries the application added itself are never removed)."""
    if not names:
        yield
        return
    with _ALLOWLIST_LOCK:
        present = {_global_name(g) for g in torch.serialization.get_safe_globals()}
        ours = [g for g in _benign_objects(sorted(names)) if _global_name(g) not in present]
        with torch.serialization.safe_globals(ours):
            yield


def unsafe_globals(source, exc: BaseException | None = None) -> list[str]:
    """The pickle globals of a checkpoint that a weights-only load refuses (read statically,
    nothing is unpickled); for a legacy (non-zip) file, the one named by ``exc``."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc or ""))
        return sorted(set(found))


def _pickle_strings(source, limit: int = 4096) -> set[str]:
    """String constants of a torch zip checkpoint's pickle (disassembled, never unpickled)."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        with zipfile.ZipFile(source) as archive:
            member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            if archive.getinfo(member).file_size > 64 << 20:
                return set()
            data = archive.read(member)
        found = set()
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                found.add(arg)
                if len(found) >= limit:
                    break
        return found
    except Exception:
        return set()


def refusal_message(source, name, refused: list[str], exc: BaseException | None = None) -> str:
    """Why a weights-only load refused a file, in user terms: what the file is, what to do."""
    shown = [g for g in refused if g not in BENIGN_GLOBALS] or refused  # name the culprits
    named = ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "")
    if any(g.startswith("ultralytics.") for g in refused):
        found = _ultralytics_models(source) if isinstance(source, (str, Path)) else ""
        choose = f" {found}" if found else f" Choose {_ULTRALYTICS_CHOICES}."
        return (
            f"Refused to load {name} as a state dict: it is an ultralytics checkpoint (FastSAM or "
            f"the MobileSAMv2 detector), a pickled network object ({_pick(refused, 'ultralytics.')}"
            f"). Nothing was executed.{choose}"
        )
    if any(g.split(".")[0] in _TRAINING_PACKAGES for g in refused) or "model_state" in _pickle_strings(source):
        return (
            f"Refused to load {name}: it is a training checkpoint (micro-sam / torch_em layout) "
            f"that also stores Python objects ({named}), which are unsafe to unpickle: they "
            "could run code. Nothing was executed. Export its SAM weights as a plain state dict "
            "with micro-sam (micro_sam.util.export_custom_sam_model(checkpoint, 'vit_b', "
            "'exported.pth'), in micro-sam's environment) and load that file."
        )
    if any(g.startswith(_NETWORK_PACKAGES) for g in refused):
        return (
            f"Refused to load {name}: it is a whole pickled network object ({named}), not a "
            "state dict; unpickling it is unsafe (it could run code). Nothing was executed. "
            "Save the weights with torch.save(model.state_dict(), path) in the code that made "
            "it, or use the official checkpoint file."
        )
    if not refused:
        reason = _unpickler_reason(exc)
        return (
            f"Refused to load {name}: it contains pickled data other than tensors and plain "
            f"containers, which is unsafe to unpickle ({reason}). Nothing was executed. Use the "
            "official checkpoint file for this model."
        )
    return (
        f"Refused to load {name}: it contains pickled Python objects other than tensors and "
        f"plain containers ({named}), which are unsafe to unpickle: they could run code. "
        "Nothing was executed. Use the official checkpoint file for this model."
    )


def _pick(names: list[str], prefix: str) -> str:
    preferred = [n for n in names if n.startswith(prefix + "nn.tasks")] or [
        n for n in names if n.startswith(prefix)]
    return preferred[0]


def _unpickler_reason(exc: BaseException | None) -> str:
    """The WeightsUnpickler line of torch's message, without its advice to allowlist or to
    pass weights_only=False, and without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc or ""))
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    line = match.group(1) if match else _first_line(exc) if exc else "unknown content"
    if not line.strip():  # the reason may follow on the next non-empty line
        rest = text[match.end():].strip().splitlines() if match else []
        line = rest[0] if rest else "unknown content"
    return re.split(r"\. Please use|, but got", line)[0].strip().rstrip(".")


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- readers


def read_state_dict(path: Path) -> tuple[dict, dict]:
    """A plain ``{key: tensor}`` file (SAM, MobileSAM, micro-sam); wrappers are undone by the
    key mapper."""
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    if isinstance(obj.get("decoder_state"), Mapping):
        logger.info("%s: its 'decoder_state' (micro-sam's instance-segmentation decoder) is not "
                    "used; only the SAM weights are loaded", path)
    return obj, {}


def read_efficient_sam(path: Path) -> tuple[dict, dict]:
    """EfficientSAM: ``{'model': state_dict}``, possibly inside an outer zip (the ViT-S release)."""
    from ..models.efficient_sam.keys import unwrap_efficient_sam
    from .efficient_sam_file import load_efficient_sam_object

    try:
        obj = load_efficient_sam_object(path)
    except CheckpointError:
        raise
    except ValueError as err:  # an outer zip without exactly one .pt
        raise CheckpointError(str(err)) from None
    try:
        return unwrap_efficient_sam(obj), {}
    except ValueError as err:
        found = describe_checkpoint(obj)
        if found:
            raise CheckpointError(f"{path} is not an EfficientSAM checkpoint. {found}") from None
        raise CheckpointError(f"{path}: {err}") from None


def read_ultralytics(path: Path) -> tuple[dict, dict]:
    """FastSAM / MobileSAMv2 object-aware model: ultralytics pickle, read with an allowlist.

    A file that names no ultralytics class is not such a pickle: it is read as a state dict
    (weights only) and accepted when it is a YOLOv8 state dict in the official key layout;
    otherwise the error says what it is.
    """
    from .ultralytics_reader import config_from_state_dict, read_ultralytics_checkpoint

    if _names_ultralytics(path):
        return read_ultralytics_checkpoint(path)
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping) and _is_yolo_state_dict(obj):
        return dict(obj), config_from_state_dict(dict(obj))
    found = describe_checkpoint(obj)
    raise CheckpointError(
        f"{path} is not an ultralytics checkpoint (FastSAM or the MobileSAMv2 detector). "
        + (found or f"It holds {_layout(obj)}. Use the official file.")
    )


def _names_ultralytics(path: Path) -> bool:
    """True when the file's pickle references ultralytics classes (read statically).  Files
    that are not torch zip archives (legacy, damaged) go to the weights-only loader, which
    explains them."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return False
    return any(n.startswith("ultralytics.") for n in names)


def _is_yolo_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(
        isinstance(k, str) and re.match(r"^(model\.)?model\.\d+\.", k) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


READERS: dict[str, Reader] = {
    "state_dict": read_state_dict,
    "efficient_sam": read_efficient_sam,
    "ultralytics": read_ultralytics,
}


def read_checkpoint(spec: ModelSpec, path: Path) -> tuple[dict, dict]:
    """Read ``path`` the way ``spec`` says its official file is laid out."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty: delete it and download it again.")
    state_dict, config = READERS[spec.checkpoint_format](path)
    if spec.file_signature and config:
        differ = {k: config.get(k) for k, v in spec.file_signature.items() if config.get(k) != v}
        if differ:  # e.g. FastSAM-s given to fastsam_x: built as what the file holds
            others = _models_with_signature(config)
            logger.warning("%s is not the official %s file (%s); the network is built as the file "
                           "describes it%s", path, spec.name,
                           ", ".join(f"{k}={v!r}" for k, v in differ.items()),
                           f" (it looks like {others[0]})" if others else "")
    return state_dict, config


# ----------------------------------------------------------------------------- strict loading


def load_weights(model: torch.nn.Module, spec: ModelSpec, state_dict: dict, source: str) -> None:
    """Strictly load an official-layout state dict; explain mismatches in user terms."""
    try:
        mapped = spec.map_keys(state_dict)
    except (KeyError, ValueError, TypeError) as exc:
        found = describe_checkpoint(state_dict, exclude=spec.name)
        hint = f" {found}" if found else ""
        raise CheckpointError(f"{source} is not a {spec.name} checkpoint: {exc}.{hint}") from None
    missing, unexpected, wrong_shape = _compare(model.state_dict(), mapped)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(spec, source, state_dict, missing, unexpected,
                                                wrong_shape))
    model.load_state_dict(mapped, strict=True)


def _compare(ours: dict, theirs: dict) -> tuple[list, list, list]:
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    wrong = [
        f"{k} {tuple(theirs[k].shape)} != {tuple(v.shape)}"
        for k, v in ours.items()
        if k in theirs and hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, wrong


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


# ----------------------------------------------------------------------------- what is this file?


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
        spec = specs[0]
        try:
            theirs = _normalised(spec, obj)
            ours = _meta_shapes(spec)
        except Exception:  # a half-written sibling family must not hide the real error
            continue
        if not any(_compare(ours, theirs)):
            names += [s.name for s in specs]
    names += _yolo_models(obj)
    return [n for n in names if n != exclude]


def guess_model(state_dict: dict, exclude: str = "") -> str | None:
    """Name of the first registered model whose keys and shapes match ``state_dict``."""
    names = matching_models(state_dict, exclude=exclude)
    return names[0] if names else None


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


_META_SHAPES: dict[tuple, dict] = {}


def _meta_shapes(spec: ModelSpec) -> dict:
    key = (spec.builder, repr(sorted(dict(spec.builder_kwargs).items())))
    if key not in _META_SHAPES:
        with torch.device("meta"):
            _META_SHAPES[key] = spec.build().state_dict()  # meta tensors: shapes only
    return _META_SHAPES[key]


def _normalised(spec: ModelSpec, obj: Mapping) -> dict:
    if spec.checkpoint_format == "efficient_sam":
        from ..models.efficient_sam.keys import unwrap_efficient_sam

        return unwrap_efficient_sam(obj)
    return spec.map_keys(obj)


def _yolo_models(obj: Mapping) -> list[str]:
    """Ultralytics models whose ``file_signature`` fits a bare YOLOv8 state dict."""
    if not _is_yolo_state_dict(obj):
        return []
    from .ultralytics_reader import config_from_state_dict

    try:
        config = config_from_state_dict({k.removeprefix("model.") if k.startswith("model.model.")
                                         else k: v for k, v in obj.items()})
    except Exception:
        return []
    return _models_with_signature(config)


def _models_with_signature(config: Mapping) -> list[str]:
    return [s.name for s in REGISTRY.values()
            if s.checkpoint_format == "ultralytics" and s.file_signature
            and all(config.get(k) == v for k, v in s.file_signature.items())]


def _ultralytics_models(path) -> str:
    """"It holds FastSAM-s weights: choose fastsam_s." for an ultralytics file (read with the
    restricted unpickler), or "" when it cannot be told."""
    from .ultralytics_reader import read_ultralytics_checkpoint

    try:
        _, config = read_ultralytics_checkpoint(path)
    except Exception:
        return ""
    names = _models_with_signature(config)
    if not names:
        return ""
    return f"It holds {REGISTRY[names[0]].title} weights: choose {' or '.join(names)}."


def _layout(obj) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        return f"a dict with the entries [{shown}]"
    return f"a {type(obj).__name__}"
