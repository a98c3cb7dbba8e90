"""The restricted reader of ultralytics checkpoints: real-format files, and hostile ones.

Hostile files are crafted here; every one must be refused with a CheckpointError that says
why, and nothing in it may run (a marker file proves a shell command did not execute).
"""
from __future__ import annotations

import io
import os
import pickle
import re
import sys
import types
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from napari_segany.engine.errors import CheckpointError
from napari_segany.engine.weights.ultralytics_reader import (
    config_from_state_dict, module_state_dict, read_ultralytics_checkpoint, unpickle_checkpoint,
)
from napari_segany.models.yolo.build import build_yolov8
from napari_segany.models.yolo.keys import map_ultralytics_keys

SRC = Path(__file__).resolve().parents[1] / "src"
REAL_FILES = {
    "fastsam_s": "FastSAM-s.synth-seed0.pt",
    "mobilesamv2_objectaware": "ObjectAwareModel.synth-seed0.pt",
}


# ----------------------------------------------------------------------------- crafting helpers


def _archive(tmp_path: Path, payload: bytes, members: dict[str, bytes] | None = None) -> Path:
    """A torch-style zip: best/data.pkl plus raw members (data/<key>)."""
    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("best/data.pkl", payload)
        zf.writestr("best/byteorder", b"little")
        for name, data in (members or {}).items():
            zf.writestr(f"best/{name}", data)
    return path


class _Storage:
    def __init__(self, key: str, numel: int):
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(<persistent storage>, offset, size, stride, ...)."""

    def __init__(self, storage: _Storage, size, stride, offset=0):
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def _dumps(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


@contextmanager
def _fake_classes(*qualnames: str):
    """Importable dummy classes under official names, only while pickling the crafted file."""
    added, classes = [], {}
    for qualname in qualnames:
        module_name, _, cls_name = qualname.rpartition(".")
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        cls = type(cls_name, (), {"__module__": module_name, "__qualname__": cls_name})
        setattr(sys.modules[module_name], cls_name, cls)
        classes[qualname] = cls
    try:
        yield classes
    finally:
        for name in added:
            sys.modules.pop(name, None)


def _module(cls, params=None, modules=None, **attrs):
    obj = cls.__new__(cls)
    obj.__dict__.update({"training": False, "_parameters": params or {}, "_buffers": {},
                         "_modules": modules or {}, **attrs})
    return obj


# ----------------------------------------------------------------------------- hostile files


def test_command_in_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = _archive(tmp_path, pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"(posix|nt|os)\.system.*Nothing was executed"):
        read_ultralytics_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload, name", [
    (b"\x80\x02c__builtin__\neval\nX\x06\x00\x00\x001+1 \n\x85R.", "builtins.eval"),
    (b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81.", "torch.nn.modules.linear.Linear"),
    (b"\x80\x02cultralytics.nn.modules.block\nC3\n)\x81.", "ultralytics.nn.modules.block.C3"),
    (b"\x80\x02csubprocess\nPopen\n.", "subprocess.Popen"),
])
def test_unknown_globals_are_refused_by_name(tmp_path, payload, name):
    with pytest.raises(CheckpointError, match=re.escape(name)):
        read_ultralytics_checkpoint(_archive(tmp_path, payload))


def test_getattr_is_only_allowed_for_detect_forward(tmp_path):
    payload = b"\x80\x02c__builtin__\ngetattr\ncollections\nOrderedDict\nX\x08\x00\x00\x00fromkeys\x86R."
    with pytest.raises(CheckpointError, match="getattr"):
        read_ultralytics_checkpoint(_archive(tmp_path, payload))


def test_truncated_and_garbage_files(tmp_path, parity_or_crafted):
    data = parity_or_crafted.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_ultralytics_checkpoint(cut)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_ultralytics_checkpoint(junk)


def test_missing_or_short_tensor_data(tmp_path):
    payload = _dumps({"w": _Tensor(_Storage("0", 4), (4,), (1,))})
    with pytest.raises(CheckpointError, match="missing"):
        unpickle_checkpoint(_archive(tmp_path, payload))
    with pytest.raises(CheckpointError, match="bytes, expected 16"):
        unpickle_checkpoint(_archive(tmp_path, payload, {"data/0": b"\x00" * 8}))


def test_tensor_reaching_past_its_storage(tmp_path):
    payload = _dumps({"w": _Tensor(_Storage("0", 4), (10,), (1,))})
    with pytest.raises(CheckpointError, match="past its storage"):
        unpickle_checkpoint(_archive(tmp_path, payload, {"data/0": b"\x00" * 16}))


def test_zero_stride_tensor_cannot_inflate(tmp_path):
    payload = _dumps({"w": _Tensor(_Storage("0", 1), (10**9,), (0,))})
    with pytest.raises(CheckpointError, match="larger than its storage"):
        unpickle_checkpoint(_archive(tmp_path, payload, {"data/0": b"\x00" * 4}))


def test_module_cycles_are_refused(tmp_path):
    name = "ultralytics.nn.tasks.SegmentationModel"
    with _fake_classes(name) as cls:
        model = _module(cls[name])
        model._modules["self"] = model  # a cycle the pickle memo keeps
        payload = _dumps({"model": model})
    with pytest.raises(CheckpointError, match="nested deeper"):
        read_ultralytics_checkpoint(_archive(tmp_path, payload))


def test_plain_state_dict_is_not_an_ultralytics_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    assert torch.equal(unpickle_checkpoint(path)["w"], torch.arange(4.0))  # torch's own format reads
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        read_ultralytics_checkpoint(path)


def test_stand_in_modules_give_a_state_dict(tmp_path):
    names = ("ultralytics.nn.tasks.SegmentationModel", "torch.nn.modules.conv.Conv2d")
    with _fake_classes(*names) as cls:
        conv = _module(cls[names[1]], params={"weight": _Tensor(_Storage("0", 6), (2, 3), (3, 1)),
                                              "bias": None})
        model = _module(cls[names[0]], modules={"conv": conv}, yaml={"scale": "n"})
        payload = _dumps({"model": model, "ema": None})
    raw = torch.arange(6, dtype=torch.float32).numpy().tobytes()
    ckpt = unpickle_checkpoint(_archive(tmp_path, payload, {"data/0": raw}))
    assert "ultralytics" not in sys.modules
    sd = module_state_dict(ckpt["model"])
    assert list(sd) == ["conv.weight"]
    assert torch.equal(sd["conv.weight"], torch.arange(6.0).view(2, 3))


@pytest.fixture
def parity_or_crafted(tmp_path):
    """A real-format file when ../shared is there, else a small crafted torch zip."""
    from _paths import PARITY

    real = PARITY / "fastsam_s" / REAL_FILES["fastsam_s"]
    if real.is_file():
        return real
    path = tmp_path / "small.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    return path


def test_no_unrestricted_unpickling_in_src():
    offenders = [str(p) for p in SRC.rglob("*.py") if re.search(r"pickle\.loads?\(", p.read_text())]
    assert not offenders, offenders
    reader = (SRC / "napari_segany" / "engine" / "weights" / "ultralytics_reader.py").read_text()
    assert "torch.load" not in reader and "weights_only" not in reader


# ----------------------------------------------------------------------------- real-format files


@pytest.mark.parity
@pytest.mark.parametrize("case", sorted(REAL_FILES))
def test_real_format_files(case, parity_dir, synth_state_dict, monkeypatch):
    def no_torch_load(*args, **kwargs):
        raise AssertionError("the reader must not call torch.load")

    monkeypatch.setattr(torch, "load", no_torch_load)
    sd, config = read_ultralytics_checkpoint(parity_dir / case / REAL_FILES[case])
    assert "ultralytics" not in sys.modules

    # README: "ckpt['model'].state_dict() equals sd key for key and bit for bit"
    expected = dict(synth_state_dict(case))
    key = "model.22.dfl.conv.weight"
    expected[key] = torch.arange(expected[key].shape[1], dtype=torch.float32).view(1, -1, 1, 1).half()
    assert sorted(sd) == sorted(expected)
    for k, v in expected.items():
        assert sd[k].dtype == v.dtype and torch.equal(sd[k], v), k

    reg_max, has_proto = (16, True) if case == "fastsam_s" else (26, False)
    assert config == {
        "scale": "s", "depth_multiple": 0.33, "width_multiple": 0.5, "max_channels": 1024,
        "nc": 1, "reg_max": reg_max, "head": "segment", "nm": 32, "npr": 128,
        "has_proto": has_proto, "names": {0: "object"},
    }
    model = build_yolov8(**config)
    model.load_state_dict(map_ultralytics_keys(sd), strict=True)
    from_shapes = config_from_state_dict(sd)  # a bare state dict (no yaml) gives the same network
    assert {k: from_shapes[k] for k in ("scale", "reg_max", "has_proto", "nm")} == {
        k: config[k] for k in ("scale", "reg_max", "has_proto", "nm")}
    build_yolov8(**from_shapes).load_state_dict(map_ultralytics_keys(sd), strict=True)


@pytest.mark.parametrize("scale, reg_max, has_proto", [("n", 16, True), ("m", 26, False), ("x", 16, True)])
def test_config_from_state_dict_finds_the_scale(scale, reg_max, has_proto):
    with torch.device("meta"):
        sd = build_yolov8(scale=scale, reg_max=reg_max, has_proto=has_proto).state_dict()
    config = config_from_state_dict(sd)
    assert (config["scale"], config["reg_max"], config["has_proto"]) == (scale, reg_max, has_proto)
