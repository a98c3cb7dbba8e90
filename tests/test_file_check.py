"""check_checkpoint: a chosen weights file judged before any load, in plain words (issue 14,
item 3): no unpickling, no network built, the model the file belongs to named."""
from __future__ import annotations

import sys

import pytest
import torch

from _everything import DETECTOR_FILE, FASTSAM_FILE, TINY_SAM, random_state_dict
from napari_segany.engine.weights import RefusedFile, check_checkpoint, refuse_wrong_file
from napari_segany.models import registry


@pytest.fixture
def tiny_file(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM.name, TINY_SAM)
    path = tmp_path / "tiny_sam.pt"
    torch.save(random_state_dict(TINY_SAM), path)
    return path


def test_text_and_truncated_files(tmp_path, tiny_file):
    text = tmp_path / "mobile_sam.pt"
    text.write_text("Not weights at all\n")
    verdict = check_checkpoint("mobile_sam", text)
    assert verdict.refused and "is not a PyTorch checkpoint (it holds text)" in verdict.problem
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_file.read_bytes()[:5000])
    assert "the file is truncated (download it again)" in check_checkpoint("tiny_sam", cut).problem
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "is empty" in check_checkpoint("tiny_sam", tmp_path / "empty.pt").problem
    assert "was not found" in check_checkpoint("tiny_sam", tmp_path / "nowhere.pt").problem


def test_the_family_of_another_model_s_file_is_named(tiny_file):
    assert not check_checkpoint("tiny_sam", tiny_file).refused
    verdict = check_checkpoint("efficient_sam_vitt", tiny_file, lambda spec: f"use {spec.name}")
    assert verdict.holds[0] == "tiny_sam"
    assert verdict.problem.endswith("not EfficientSAM ViT-Tiny (efficient_sam_vitt.pt): use tiny_sam.")
    with pytest.raises(RefusedFile, match="weights \\(tiny_sam\\)"):
        refuse_wrong_file("mobile_sam", tiny_file)


@pytest.mark.skipif(not DETECTOR_FILE.exists(), reason="../shared/parity is absent")
def test_ultralytics_files_are_told_apart_without_unpickling():
    sys.modules.pop("ultralytics", None)
    verdict = check_checkpoint("fastsam_s", DETECTOR_FILE)
    assert verdict.holds == ("mobilesamv2_objectaware",)
    assert "MobileSAMv2's object-aware detector" in verdict.problem and "not FastSAM-s" in verdict.problem
    assert "is a FastSAM network" in check_checkpoint("mobilesamv2_objectaware", FASTSAM_FILE).problem
    assert not check_checkpoint("fastsam_x", FASTSAM_FILE).refused  # built as the file says
    assert "ultralytics" not in sys.modules
