"""Reading EfficientSAM weight files (plain .pt, the released .pt.zip, damaged/wrong files)."""
from __future__ import annotations

import argparse
import io
import zipfile

import pytest
import torch

from napari_segany.engine.weights.efficient_sam_file import read_efficient_sam_file
from napari_segany.models.efficient_sam.build import (
    build_efficient_sam_vits,
    build_efficient_sam_vitt,
)
from napari_segany.models.efficient_sam.keys import unwrap_efficient_sam


@pytest.fixture(scope="module")
def sd_t(synth_state_dict):
    return synth_state_dict("efficient_sam_vitt")


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _saved(obj, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def test_plain_pt(tmp_path, sd_t):
    path = tmp_path / "efficient_sam_vitt.pt"
    torch.save({"model": sd_t}, path)
    sd = read_efficient_sam_file(path)
    assert _same(sd, sd_t)
    build_efficient_sam_vitt().load_state_dict(sd, strict=True)


def test_legacy_serialization(tmp_path, sd_t):
    path = tmp_path / "old.pt"
    path.write_bytes(_saved({"model": sd_t}, _use_new_zipfile_serialization=False))
    assert _same(read_efficient_sam_file(path), sd_t)


def test_released_zip_of_vits(tmp_path, synth_state_dict):
    sd_s = synth_state_dict("efficient_sam_vits")
    path = _zip(tmp_path / "efficient_sam_vits.pt.zip", {
        "efficient_sam_vits.pt": _saved({"model": sd_s}),
        "__MACOSX/._efficient_sam_vits.pt": b"\x00\x05\x16\x07 resource fork",
    })
    sd = read_efficient_sam_file(path)
    assert _same(sd, sd_s)
    build_efficient_sam_vits().load_state_dict(sd, strict=True)


def test_zip_with_one_pt_under_another_name(tmp_path, sd_t):
    path = _zip(tmp_path / "weights.zip", {"weights/model.pth": _saved({"model": sd_t})})
    assert _same(read_efficient_sam_file(path), sd_t)


def test_truncated_pt(tmp_path, sd_t):
    data = _saved({"model": sd_t})
    path = tmp_path / "efficient_sam_vitt.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="incomplete"):
        read_efficient_sam_file(path)


def test_truncated_outer_zip(tmp_path, sd_t):
    full = _zip(tmp_path / "full.zip", {"efficient_sam_vits.pt": _saved({"model": sd_t})})
    path = tmp_path / "efficient_sam_vits.pt.zip"
    path.write_bytes(full.read_bytes()[:-5000])
    with pytest.raises(ValueError, match="incomplete"):
        read_efficient_sam_file(path)


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"state_dict": {"a.weight": torch.zeros(1)}}, "'model' entry .* found top-level keys"),
        ({"a.weight": torch.zeros(1)}, "keys .* are missing"),
        ({"model": {"prompt_encoder.not_a_point_embed.weight": torch.zeros(1)}}, "Meta SAM"),
        ({"model": [torch.zeros(1)]}, "'model' entry is a list"),
        ([torch.zeros(1)], "got a list"),
    ],
)
def test_wrong_layout(tmp_path, obj, match):
    path = tmp_path / "wrong.pt"
    torch.save(obj, path)
    with pytest.raises(ValueError, match=match):
        read_efficient_sam_file(path)


def test_unsafe_pickle_refused(tmp_path, sd_t):
    path = tmp_path / "unsafe.pt"
    torch.save({"model": sd_t, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(ValueError, match="unsafe"):
        read_efficient_sam_file(path)


def test_zip_without_weights(tmp_path):
    path = _zip(tmp_path / "efficient_sam_vits.pt.zip", {"README.txt": b"hello"})
    with pytest.raises(ValueError, match="exactly one .pt"):
        read_efficient_sam_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_efficient_sam_file(tmp_path / "nope.pt")


def test_unwrap_accepts_bare_state_dict(sd_t):
    assert _same(unwrap_efficient_sam(sd_t), sd_t)
    assert _same(unwrap_efficient_sam({"model": sd_t, "epoch": 3}), sd_t)
