"""Checkpoint files in every layout we accept, and the errors for everything else.

* micro-sam's fine-tunes: the registry entries, and each plausible on-disk layout (plain
  state dict; micro-sam / torch_em training checkpoint ``{'model_state': {'sam.<key>'}}``
  with optimizer state, numpy scalars or an instance-segmentation ``decoder_state``), read
  by the safe loader and mapped strictly; hostile variants are refused and never run.
* Files given to the wrong model family: each error says what the file is and which model
  to choose (ultralytics pickles, EfficientSAM, SAM / MobileSAM, YOLOv8 state dicts).

The tiny-model tests need nothing beside the repository; the ones on real-format and
synthesized official weights skip only when ``../shared`` is absent.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_segany as nsa
from napari_segany.engine.weights import readers as checkpoints
from napari_segany.engine.errors import CheckpointError
from napari_segany.models.registry import REGISTRY, get_spec
from napari_segany.models.sam.keys import map_sam_keys

from _everything import TINY_SAM_KWARGS, random_state_dict
from _paths import SHARED

MICRO_SAM = ("micro_sam_vit_b_lm_v1", "micro_sam_vit_b_em_v1")
VIT_B_GROUP = ["sam_vit_b", *MICRO_SAM]
MARKER = Path("/tmp/napari_segany_checkpoint_errors_pwned")

# A micro-sam entry with a tiny SAM encoder: the same reader and key mapper, fast to build.
TINY_MICRO_SAM = dataclasses.replace(
    REGISTRY["micro_sam_vit_b_lm_v1"], name="tiny_micro_sam",
    builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=TINY_SAM_KWARGS,
    input_size=256, urls=(), sha256=None, file_name="tiny_micro_sam.pth",
)


class _RunsCode:
    """An object whose unpickling would run a shell command."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def tiny_sd() -> dict:
    return random_state_dict(TINY_MICRO_SAM)


def _sam_prefixed(sd: dict, prefix: str = "sam.") -> dict:
    return {prefix + k: v for k, v in sd.items()}


def _adam_state(sd: dict) -> dict:
    """What torch.optim.Adam.state_dict() looks like: plain tensors, ints, floats, tuples."""
    return {
        "state": {i: {"step": torch.tensor(40.0), "exp_avg": torch.zeros(2),
                      "exp_avg_sq": torch.zeros(2)} for i in range(3)},
        "param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "params": list(range(len(sd)))}],
    }


def _load_tiny(path):
    return nsa.load_model(TINY_MICRO_SAM, checkpoint=path, device="cpu")


def _same_weights(model, sd: dict) -> bool:
    ours = model.state_dict()
    return sorted(ours) == sorted(sd) and all(torch.equal(ours[k], v) for k, v in sd.items())


# ----------------------------------------------------------------------------- registry


def test_micro_sam_entries_are_sam_vit_b():
    base = get_spec("sam_vit_b")
    for name in MICRO_SAM:
        spec = get_spec(name)
        assert spec.builder == base.builder and spec.key_mapper == base.key_mapper
        assert spec.checkpoint_format == "state_dict" and spec.preprocessing == "longest_side"
        assert (spec.pixel_mean, spec.pixel_std, spec.input_size) == (
            base.pixel_mean, base.pixel_std, base.input_size)
        assert spec.license.startswith("CC-BY-4.0") and spec.sha256 and spec.urls
    assert "light microscopy" in get_spec("micro_sam_vit_b_lm_v1").description
    assert "electron microscopy" in get_spec("micro_sam_vit_b_em_v1").description
    assert "micro_sam_vit_b_lm_v1" in nsa.list_models("promptable")


def test_micro_sam_entries_match_the_shared_facts():
    facts_file = SHARED / "checkpoints.json"
    if not facts_file.is_file():
        pytest.skip(f"{facts_file} not found (a user's clone has no ../shared)")
    facts = json.loads(facts_file.read_text())
    for name in MICRO_SAM:
        spec = get_spec(name)
        assert spec.file_name == facts[name]["file"]
        assert list(spec.urls) == facts[name]["urls"]
        assert spec.sha256 == facts[name]["sha256"]


def test_micro_sam_files_match_sam_vit_b_on_meta():
    """Same architecture: a ViT-B state dict is named as sam_vit_b *and* both fine-tunes."""
    with torch.device("meta"):
        sd = get_spec("sam_vit_b").build().state_dict()
    assert checkpoints.matching_models(sd) == VIT_B_GROUP
    assert checkpoints.matching_models({"model_state": _sam_prefixed(sd)}) == VIT_B_GROUP
    assert checkpoints.guess_model(sd, exclude="sam_vit_b") == "micro_sam_vit_b_lm_v1"


# ----------------------------------------------------------------------------- micro-sam layouts


def _layout(name: str, sd: dict) -> dict:
    wrapped = _sam_prefixed(sd)
    return {
        "plain": sd,
        "model_state": {"model_state": wrapped},
        "model_state_ddp": {"model_state": _sam_prefixed(sd, "module.sam.")},
        "training_checkpoint": {  # torch_em's trainer: plain types, tensors and numpy numbers
            "model_state": wrapped, "optimizer_state": _adam_state(sd),
            "scheduler_state": {"best": float("inf"), "num_bad_epochs": 2, "_last_lr": [1e-5]},
            "epoch": 12, "iteration": 25000, "best_epoch": 11,
            "best_metric": np.float64(0.125), "current_metric": np.float32(0.25),
            "init": {"model_class": "micro_sam.training.trainable_sam.TrainableSAM",
                     "model_kwargs": {"n_sub_iteration": 8}},
            "timestamp": "17-08-2023 (10:00:00)",
        },
        "with_decoder_state": {  # micro-sam's exported model + instance-segmentation decoder
            "model_state": wrapped,
            "decoder_state": {"base.conv.weight": torch.zeros(4, 4, 3, 3),
                              "out_conv.bias": torch.zeros(3)},
        },
    }[name]


@pytest.mark.parametrize("layout", ["plain", "model_state", "model_state_ddp",
                                    "training_checkpoint", "with_decoder_state"])
def test_micro_sam_layouts_load_strictly(tmp_path, tiny_sd, layout, caplog):
    path = tmp_path / f"{layout}.pth"
    torch.save(_layout(layout, tiny_sd), path)
    before = {str(g) for g in torch.serialization.get_safe_globals()}
    with caplog.at_level(logging.INFO, logger="napari_segany"):
        model = _load_tiny(path)
    assert _same_weights(model, tiny_sd)
    assert {str(g) for g in torch.serialization.get_safe_globals()} == before  # nothing leaked
    if layout == "with_decoder_state":
        assert "decoder_state" in caplog.text


def test_legacy_serialization_with_numpy_scalars(tmp_path, tiny_sd):
    """An old-format (non-zip) file names one refused global at a time: still loaded."""
    path = tmp_path / "legacy.pth"
    torch.save({"model_state": _sam_prefixed(tiny_sd), "best_metric": np.float64(0.5)}, path,
               _use_new_zipfile_serialization=False)
    assert _same_weights(_load_tiny(path), tiny_sd)


def test_the_numpy_allowlist_keeps_the_applications_own_globals(tmp_path, tiny_sd):
    path = tmp_path / "with_numpy.pth"
    torch.save({"model_state": tiny_sd, "metric": np.float64(1.0)}, path)
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([np.dtype])
    try:
        _load_tiny(path)
        assert np.dtype in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


@pytest.mark.parametrize("layout, match", [
    ("mixed_prefix", "unexpected keys .*sam.image_encoder"),  # 'sam.' only where micro-sam put it
    ("missing_key", "1 keys missing .*mask_decoder.iou_token.weight"),
    ("two_state_dicts", "several state dicts .*'model', 'model_state'"),
    ("not_a_tensor", "entry 'meta' is a dict"),
])
def test_micro_sam_layouts_are_mapped_strictly(tmp_path, tiny_sd, layout, match):
    wrapped = _sam_prefixed(tiny_sd)
    obj = {
        "mixed_prefix": {"model_state": {**wrapped, "iou_scale": torch.ones(1)}},
        "missing_key": {"model_state": {k: v for k, v in wrapped.items()
                                        if k != "sam.mask_decoder.iou_token.weight"}},
        "two_state_dicts": {"model": tiny_sd, "model_state": wrapped},
        "not_a_tensor": {"model_state": {**tiny_sd, "meta": {"lr": 1}}},
    }[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=match):
        _load_tiny(path)


@pytest.mark.parametrize("extra", [
    {"init": _RunsCode()},
    {"best_metric": np.float64(0.5), "init": _RunsCode()},  # benign numpy does not open the door
])
def test_hostile_training_checkpoint_is_refused_and_not_run(tmp_path, tiny_sd, extra):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / "hostile.pth"
    torch.save({"model_state": _sam_prefixed(tiny_sd), **extra}, path)
    with pytest.raises(CheckpointError) as err:
        _load_tiny(path)
    message = str(err.value)
    assert "Nothing was executed" in message and "system" in message
    assert "numpy" not in message  # only the culprit is named
    assert "training checkpoint" in message and "export_custom_sam_model" in message
    assert "\x1b" not in message and "weights_only=False" not in message
    assert not MARKER.exists()


@pytest.fixture
def fake_package(monkeypatch):
    """``fake_package(module, class_name)``: a picklable class that claims to live in another
    package (micro_sam, segment_anything...), without that package installed."""

    def make(module: str, name: str) -> type:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        cls = type(name, (), {"__module__": module})
        setattr(sys.modules[module], name, cls)
        return cls

    return make


def test_pickled_micro_sam_objects_are_explained(tmp_path, tiny_sd, fake_package):
    trainable = fake_package("micro_sam.training.trainable_sam", "TrainableSAM")
    path = tmp_path / "best.pt"
    torch.save({"model_state": _sam_prefixed(tiny_sd), "init": {"model": trainable()}}, path)
    with pytest.raises(CheckpointError, match=r"training checkpoint .*micro_sam\.training\.trainable_sam"
                                              r"\.TrainableSAM.*Nothing was executed"):
        _load_tiny(path)


def test_whole_pickled_network_is_explained(tmp_path, fake_package):
    sam_class = fake_package("segment_anything.modeling.sam", "Sam")
    path = tmp_path / "model.pth"
    torch.save(sam_class(), path)
    with pytest.raises(CheckpointError, match=r"whole pickled network object .*state_dict\(\)"):
        _load_tiny(path)


@pytest.mark.parity
def test_micro_sam_training_layout_with_vit_b_weights(synth_state_dict):
    """The registered entry itself, on synthesized ViT-B weights in micro-sam's layout."""
    sd = synth_state_dict("sam_vit_b")
    model = nsa.load_model("micro_sam_vit_b_em_v1", device="cpu", checkpoint={
        "model_state": _sam_prefixed(sd), "decoder_state": {"x": torch.zeros(1)}, "epoch": 3})
    assert model.spec.name == "micro_sam_vit_b_em_v1"
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(model.state_dict()[key], map_sam_keys(sd)[key])


# ----------------------------------------------------------------------------- across families


@pytest.fixture(scope="module")
def files(tmp_path_factory, synth_state_dict, parity_dir):
    """Real-format ultralytics files and synthesized official SAM / EfficientSAM files."""
    folder = tmp_path_factory.mktemp("official")
    out = {
        "fastsam_s": parity_dir / "fastsam_s" / "FastSAM-s.synth-seed0.pt",
        "objectaware": parity_dir / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt",
    }
    for name, case, wrap in (("sam_vit_b", "sam_vit_b", False), ("mobile_sam", "mobile_sam", False),
                             ("efficient_sam_vitt", "efficient_sam_vitt", True)):
        out[name] = folder / f"{name}.pt"
        sd = synth_state_dict(case)
        torch.save({"model": sd} if wrap else sd, out[name])
    return out


def _error(model: str, path) -> str:
    with pytest.raises(CheckpointError) as err:
        nsa.load_model(model, checkpoint=path, device="cpu")
    message = str(err.value)
    assert "\x1b" not in message and "weights_only=False" not in message
    return message


@pytest.mark.parity
@pytest.mark.parametrize("model", ["sam_vit_b", "mobile_sam", "micro_sam_vit_b_lm_v1",
                                   "efficient_sam_vitt"])
def test_ultralytics_pickle_given_to_a_sam_model(files, model):
    message = _error(model, files["fastsam_s"])
    assert "ultralytics checkpoint (FastSAM or the MobileSAMv2 detector)" in message
    assert "ultralytics.nn.tasks.SegmentationModel" in message
    assert "Nothing was executed" in message and "choose fastsam_s" in message
    assert "ultralytics" not in sys.modules


@pytest.mark.parity
def test_mobilesamv2_detector_given_to_a_sam_model(files):
    message = _error("mobile_sam", files["objectaware"])
    assert "ultralytics checkpoint" in message and "choose mobilesamv2_objectaware" in message


@pytest.mark.parity
def test_efficient_sam_file_given_to_mobile_sam(files):
    message = _error("mobile_sam", files["efficient_sam_vitt"])
    assert "does not hold mobile_sam weights" in message
    assert "looks like efficient_sam_vitt weights (EfficientSAM ViT-Tiny): choose efficient_sam_vitt" in message


@pytest.mark.parity
@pytest.mark.parametrize("file, choose", [("sam_vit_b", "choose sam_vit_b (same architecture: "
                                                        "micro_sam_vit_b_lm_v1, micro_sam_vit_b_em_v1)"),
                                          ("mobile_sam", "choose mobile_sam.")])
def test_sam_file_given_to_efficient_sam(files, file, choose):
    message = _error("efficient_sam_vitt", files[file])
    assert "is not an EfficientSAM checkpoint" in message and choose in message


@pytest.mark.parity
@pytest.mark.parametrize("model, file, choose", [
    ("fastsam_s", "sam_vit_b", "choose sam_vit_b"),
    ("fastsam_s", "mobile_sam", "choose mobile_sam"),
    ("fastsam_x", "efficient_sam_vitt", "choose efficient_sam_vitt"),
    ("mobilesamv2_objectaware", "sam_vit_b", "choose sam_vit_b"),
])
def test_sam_family_file_given_to_an_ultralytics_model(files, model, file, choose):
    message = _error(model, files[file])
    assert "is not an ultralytics checkpoint (FastSAM or the MobileSAMv2 detector)" in message
    assert choose in message


@pytest.mark.parity
def test_sam_state_dict_given_to_fastsam(synth_state_dict):
    message = _error("fastsam_s", synth_state_dict("mobile_sam"))
    assert "not a fastsam_s (YOLOv8) state dict" in message and "choose mobile_sam" in message


@pytest.mark.parity
def test_bare_yolo_state_dict_file_loads_as_fastsam(tmp_path, files):
    from napari_segany.engine.weights.ultralytics_reader import read_ultralytics_checkpoint

    sd, _ = read_ultralytics_checkpoint(files["fastsam_s"])
    path = tmp_path / "fastsam_s_state_dict.pt"
    torch.save(sd, path)  # weights only: no pickled network, no yaml
    model = nsa.load_model("fastsam_s", checkpoint=path, device="cpu")
    assert model.spec.name == "fastsam_s"
    assert checkpoints.matching_models(sd) == ["fastsam_s"]
    assert "choose fastsam_s" in _error("sam_vit_b", path)


@pytest.mark.parity
def test_fastsam_s_file_given_to_fastsam_x_is_named(files, caplog):
    with caplog.at_level(logging.WARNING, logger="napari_segany"):
        checkpoints.read_checkpoint(get_spec("fastsam_x"), files["fastsam_s"])
    assert "not the official fastsam_x file" in caplog.text and "fastsam_s" in caplog.text


def test_efficient_sam_release_zip_given_to_a_sam_model(tmp_path):
    path = tmp_path / "efficient_sam_vits.pt.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("efficient_sam_vits.pt", b"not read")
    with pytest.raises(CheckpointError, match="EfficientSAM release.*choose efficient_sam_vits"):
        nsa.load_model("mobile_sam", checkpoint=path, device="cpu")


def test_unknown_pickled_object_is_named_without_torch_advice(tmp_path):
    import argparse

    path = tmp_path / "args.pt"
    torch.save({"image_encoder.x": torch.zeros(1), "args": argparse.Namespace(lr=1)}, path)
    message = _error("mobile_sam", path)
    assert "argparse.Namespace" in message and "Nothing was executed" in message
