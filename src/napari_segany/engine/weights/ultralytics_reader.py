"""Safe reader for ultralytics checkpoints (FastSAM-s/x, MobileSAMv2 ``ObjectAwareModel.pt``).

These files are ``torch.save`` zip archives whose pickle holds a whole
``ultralytics.nn.tasks.SegmentationModel`` object.  Loading them with torch's full
unpickler imports ultralytics and executes whatever the pickle names, so we never do that.
Instead a restricted :class:`pickle.Unpickler`

* resolves only the globals of an explicit allowlist (the ones the official files
  use, see ``shared/parity/fastsam_s/README.md``) and refuses anything else by name;
* replaces every ``torch.nn`` / ``ultralytics`` class with an inert stand-in that
  only records its ``__dict__`` (no ultralytics code exists or runs);
* rebuilds tensors itself from the raw little-endian bytes of the zip members.

From the stand-in module tree we recover the state dict (``nn.Module.state_dict``
rules) and the builder configuration (scale, widths, ``reg_max``, proto branch...).
"""
from __future__ import annotations

import math
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ...models.yolo.build import SCALES, expected_signature
from ..errors import CheckpointError

MAX_PICKLE_BYTES = 64 << 20  # the official pickles are ~0.1 MB; refuse absurd ones early
MAX_MODULE_DEPTH = 32  # the official module trees are 6 deep; guards against cycles

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "LongStorage": torch.int64,
}

# Inert stand-ins: module classes whose instances only collect their pickled __dict__.
_MODULE_CLASSES = (
    "torch.nn.modules.activation.SiLU",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.conv.ConvTranspose2d",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.Upsample",
    "ultralytics.nn.modules.block.Bottleneck",
    "ultralytics.nn.modules.block.C2f",
    "ultralytics.nn.modules.block.DFL",
    "ultralytics.nn.modules.block.Proto",
    "ultralytics.nn.modules.block.SPPF",
    "ultralytics.nn.modules.conv.Concat",
    "ultralytics.nn.modules.conv.Conv",
    "ultralytics.nn.modules.head.Detect",
    "ultralytics.nn.modules.head.Segment",
    "ultralytics.nn.tasks.SegmentationModel",
    "ultralytics.yolo.utils.IterableSimpleNamespace",
)


class StandIn:
    """Inert replacement for a pickled class: keeps the pickled attributes, runs nothing."""

    qualname = "?"
    state: dict = {}  # replaced (never mutated) by __setstate__

    def __init__(self, *args, **kwargs):
        if args or kwargs:  # REDUCE on a module class with arguments: not in any official file
            raise CheckpointError(f"{self.qualname} called with arguments; refusing the file.")
        self.state: dict = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError(f"{self.qualname}: unexpected pickled state {type(state).__name__}.")
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in {self.qualname}>"


def _make_standin(qualname: str) -> type:
    # NEWOBJ calls object.__new__ (no __init__); the attributes arrive by BUILD
    return type(qualname.rsplit(".", 1)[-1], (StandIn,), {"qualname": qualname})


_STANDINS = {name: _make_standin(name) for name in _MODULE_CLASSES}
_DETECT_FORWARD = "<Detect.forward>"  # what getattr(Detect, 'forward') becomes: a plain string


class _StorageType:
    """What ``torch.HalfStorage`` & co. resolve to: just the dtype of the raw bytes."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _restricted_getattr(obj, name):
    """``getattr`` honoured only for the one use in official files: ``Detect.forward``."""
    if obj is _STANDINS["ultralytics.nn.modules.head.Detect"] and name == "forward":
        return _DETECT_FORWARD
    raise CheckpointError(f"Refused getattr({obj!r}, {name!r}): only Detect.forward is allowed.")


def _rebuild_parameter(data, requires_grad, backward_hooks, *rest):
    if not isinstance(data, torch.Tensor):
        raise CheckpointError("_rebuild_parameter without a tensor: refusing the file.")
    return data  # a plain tensor is all a state dict needs


def _make_set(items=()):
    return set(items)


def _make_size(dims=()):
    return torch.Size([int(d) for d in dims])


class _Reader(pickle.Unpickler):
    """Unpickler with an explicit allowlist; storages come from the zip, never from code."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, shapes_only: bool = False):
        super().__init__(file)
        self._zip = archive
        self._prefix = prefix
        self._shapes_only = shapes_only  # meta tensors: the bytes are checked, never read
        self._storages: dict[str, torch.Tensor] = {}
        self._globals = {
            ("builtins", "getattr"): _restricted_getattr,
            ("builtins", "set"): _make_set,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch", "Size"): _make_size,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        }
        for name, dtype in _STORAGE_DTYPES.items():
            self._globals[("torch", name)] = _StorageType(dtype)
        for qualname, cls in _STANDINS.items():
            module, _, attr = qualname.rpartition(".")
            self._globals[(module, attr)] = cls

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module  # protocol-2 spelling
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"Refused to load: the checkpoint references {module}.{name}, which is not on "
                "the allowlist of an official FastSAM / MobileSAMv2 file. Nothing was executed. "
                "Use the official checkpoint."
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"Unexpected persistent id {str(pid)[:80]}: refusing the file.")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise CheckpointError("Malformed tensor storage reference: refusing the file.")
        if not isinstance(location, str) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError("Malformed tensor storage reference: refusing the file.")
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, storage_type.dtype, numel)
        storage = self._storages[key]
        if storage.dtype != storage_type.dtype:
            raise CheckpointError(f"Storage {key} is used with two dtypes: refusing the file.")
        return storage

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        name = f"{self._prefix}data/{key}"
        try:
            info = self._zip.getinfo(name)
        except KeyError:
            raise CheckpointError(f"Tensor data {name} is missing: the file is truncated.") from None
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if info.file_size != nbytes:  # checked before reading: no zip-bomb sized allocations
            raise CheckpointError(f"Tensor data {name} has {info.file_size} bytes, expected {nbytes}.")
        if self._shapes_only:
            return torch.empty(numel, dtype=dtype, device="meta")
        raw = bytearray(self._zip.read(name)) if nbytes else bytearray()
        if not nbytes:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(raw, dtype=dtype)  # bytearray: writable, owned by the tensor

    @staticmethod
    def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
        if not isinstance(storage, torch.Tensor):
            raise CheckpointError("Tensor without storage: refusing the file.")
        size, stride = tuple(size), tuple(stride)
        if not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)):
            raise CheckpointError("Negative or non-integer tensor geometry: refusing the file.")
        if len(size) != len(stride):
            raise CheckpointError("Tensor size and stride disagree: refusing the file.")
        if all(size):  # bounds check so as_strided never reads outside the storage
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.numel():
                raise CheckpointError("Tensor reaches past its storage: refusing the file.")
            if math.prod(size) > storage.numel():  # zero strides: a small file, a huge clone
                raise CheckpointError("Tensor larger than its storage: refusing the file.")
        return torch.as_strided(storage, size, stride, offset)


def _archive_prefix(archive: zipfile.ZipFile) -> str:
    """The single top-level folder torch.save wrote (``best/``, ``last/``...), with the slash."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError("Not a torch.save archive (no single '<folder>/data.pkl' member).")
    prefix = pickles[0][: -len("data.pkl")]
    order = f"{prefix}byteorder"
    if order in archive.namelist() and archive.read(order).strip() not in (b"little", b""):
        raise CheckpointError("Big-endian checkpoints are not supported.")
    return prefix


def unpickle_checkpoint(path: str | Path, shapes_only: bool = False) -> Any:
    """The checkpoint's top-level object, with stand-ins for modules and real tensors (meta
    tensors of the right shapes with ``shapes_only``)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive)
            info = archive.getinfo(f"{prefix}data.pkl")
            if info.file_size > MAX_PICKLE_BYTES:
                raise CheckpointError(f"{path}: the pickle is {info.file_size} bytes; refusing it.")
            with archive.open(info) as fh:
                return _Reader(fh, archive, prefix, shapes_only).load()
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"Could not read {path}: it is not a complete torch zip archive ({exc}). The file is "
            "truncated or corrupt: delete it and download it again."
        ) from None
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is malformed ({type(exc).__name__}: {exc}); refusing it.") from None


def module_state_dict(module: StandIn, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """``nn.Module.state_dict`` of a stand-in tree: parameters, persistent buffers, children."""
    if not isinstance(module, StandIn):
        raise CheckpointError(f"Expected a module at {prefix or 'the top'}, found {type(module).__name__}.")
    if depth > MAX_MODULE_DEPTH:
        raise CheckpointError(f"Modules nested deeper than {MAX_MODULE_DEPTH} levels (a cycle?).")
    state = module.state
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None and name not in skip:
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{prefix}{name} is not a tensor.")
                out[prefix + name] = value.clone()  # own contiguous memory, not the zip buffer view
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state_dict(child, f"{prefix}{name}.", depth + 1))
    return out


def read_ultralytics_checkpoint(path: str | Path, shapes_only: bool = False
                                ) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an official ultralytics checkpoint without executing any of it.

    Returns:
        state_dict: ``{'model.0.conv.weight': tensor, ...}`` in the official key layout
            (float16 as stored; the loader casts).
        config: keyword arguments of :func:`napari_segany.models.yolo.build.build_yolov8`:
            ``scale, depth_multiple, width_multiple, max_channels, nc, reg_max, head,
            nm, npr, has_proto, names``.
    """
    ckpt = unpickle_checkpoint(path, shapes_only)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path} is not an ultralytics checkpoint (no 'model' entry).")
    model = ckpt.get("ema") or ckpt["model"]  # as ultralytics' attempt_load_one_weight
    if not isinstance(model, StandIn):
        raise CheckpointError(f"{path}: 'model' is not a network object.")
    state_dict = module_state_dict(model)
    try:
        config = config_from_model(model, state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: unreadable network description ({exc}).") from None
    return state_dict, config


def _head(model: StandIn) -> StandIn:
    layers = model.state.get("_modules", {}).get("model")
    children = getattr(layers, "state", {}).get("_modules", {})
    if not children:
        raise CheckpointError("The network has no 'model' layer list.")
    return children[list(children)[-1]]


def config_from_model(model: StandIn, state_dict: dict) -> dict:
    """Builder kwargs from the pickled model's ``yaml`` and head, cross-checked with the tensors."""
    head = _head(model)
    kind = {"Segment": "segment", "Detect": "detect"}.get(type(head).__name__)
    if kind is None:
        raise CheckpointError(f"Unsupported head {head.qualname}: expected Detect or Segment.")
    depth, width, max_ch, scale = _multipliers(model.state.get("yaml") or {}, state_dict)
    _check_scale(scale, depth, width, max_ch, state_dict)
    sizes = _head_sizes(state_dict)
    attrs = head.state
    for key, value in sizes.items():  # the head's attributes must describe its own tensors
        if key in attrs and key != "npr" and int(attrs[key]) != value:
            raise CheckpointError(f"The head says {key}={attrs[key]} but its tensors give {value}.")
    names = model.state.get("names") or {}
    return {
        "scale": scale,
        "depth_multiple": depth,
        "width_multiple": width,
        "max_channels": max_ch,
        "nc": sizes["nc"],
        "reg_max": sizes["reg_max"],
        "head": kind,
        "nm": sizes["nm"],
        "npr": int(attrs.get("npr", sizes["npr"])),
        "has_proto": sizes["has_proto"],
        "names": {int(k): str(v) for k, v in dict(names).items()},
    }


def _head_sizes(sd: dict) -> dict:
    """nc, reg_max, nm, npr, has_proto read from the tensor shapes of head ``model.22``."""
    p = "model.22."
    try:
        nc = sd[p + "cv3.0.2.weight"].shape[0]
        reg_max = sd[p + "cv2.0.2.weight"].shape[0] // 4
    except KeyError as exc:
        raise CheckpointError(f"Not a YOLOv8 head: tensor {exc} is missing.") from None
    nm = sd[p + "cv4.0.2.weight"].shape[0] if p + "cv4.0.2.weight" in sd else 0
    proto = sd.get(p + "proto.cv1.conv.weight")
    npr = proto.shape[0] if proto is not None else 0
    return {"nc": nc, "reg_max": reg_max, "nm": nm, "npr": npr, "has_proto": proto is not None}


def config_from_state_dict(state_dict: dict) -> dict:
    """Builder kwargs from the tensor shapes alone (for a bare state dict in the official
    layout, which carries no yaml): the matching standard scale and the head sizes."""
    scale = infer_scale(state_dict)
    sizes = _head_sizes(state_dict)
    depth, width, max_ch = SCALES[scale]
    return {
        "scale": scale, "depth_multiple": depth, "width_multiple": width, "max_channels": max_ch,
        "nc": sizes["nc"], "reg_max": sizes["reg_max"],
        "head": "segment" if sizes["nm"] else "detect", "nm": sizes["nm"] or 32,
        "npr": sizes["npr"] or None, "has_proto": sizes["has_proto"],
        "names": {i: "object" if sizes["nc"] == 1 else f"class{i}" for i in range(sizes["nc"])},
    }


def _multipliers(yaml: dict, state_dict: dict) -> tuple[float, float, int, str | None]:
    """depth, width, max_channels and scale letter: yaml first, tensor shapes as the fallback."""
    scale = yaml.get("scale")
    scales = yaml.get("scales") or {}
    if scale in scales:
        depth, width, max_ch = scales[scale]
        return float(depth), float(width), int(max_ch), str(scale)
    if "depth_multiple" in yaml and "width_multiple" in yaml:  # early 8.0.x yaml files
        return float(yaml["depth_multiple"]), float(yaml["width_multiple"]), 1 << 30, None
    scale = infer_scale(state_dict)
    depth, width, max_ch = SCALES[scale]
    return depth, width, max_ch, scale


def infer_scale(state_dict: dict) -> str:
    """The YOLOv8 scale letter (n/s/m/l/x) whose layer shapes match ``state_dict``."""
    found = _signature_of(state_dict)
    for scale, (depth, width, max_ch) in SCALES.items():
        if expected_signature(depth, width, max_ch) == found:
            return scale
    raise CheckpointError(f"The tensor shapes {found} match no YOLOv8 scale (n, s, m, l, x).")


def _signature_of(sd: dict) -> tuple:
    try:
        c0 = sd["model.0.conv.weight"].shape[0]
        c9 = sd["model.9.cv2.conv.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"Not a YOLOv8 state dict: {exc} is missing.") from None
    n2 = len({k.split(".")[3] for k in sd if k.startswith("model.2.m.")})
    n4 = len({k.split(".")[3] for k in sd if k.startswith("model.4.m.")})
    return (c0, c9, n2, n4)


def _check_scale(scale, depth: float, width: float, max_ch: int, sd: dict) -> None:
    want = expected_signature(depth, width, max_ch)
    if _signature_of(sd) != want:
        raise CheckpointError(
            f"The checkpoint's yaml (scale {scale}) disagrees with its tensors "
            f"({_signature_of(sd)} vs {want}); the file is inconsistent."
        )
