"""Weights: cache folder, offline errors, safe and strict loading, the registry as data."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

import napari_segany as nsa
from napari_segany.engine import weights
from napari_segany.engine.errors import CheckpointError, WeightsNotFoundError
from napari_segany.models.registry import PROMPTABLE, REGISTRY, ModelSpec, get_spec


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The weights folder of a cache root given by $NAPARI_SEGANY_CACHE."""
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


class _RunsCode:
    """An object whose unpickling would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/napari_segany_pwned",))


def test_registry_entries_are_complete():
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.file_name and spec.license and spec.description
        assert spec.urls or spec.download_hint, f"{name}: no URL and no hint where to get it"
        assert spec.sha256 is None or len(spec.sha256) == 64


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if s.task == PROMPTABLE])
def test_every_promptable_model_builds_on_meta(name):
    """Each registered builder runs (meta device: no memory) and has the contract's methods."""
    with torch.device("meta"):
        model = get_spec(name).build()
    assert callable(model.encode) and callable(model.decode)
    assert model.image_size == get_spec(name).input_size


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="mobile_sam"):
        get_spec("sam_vit_z")


def test_cache_dir_env_override(cache):
    assert weights.cache_dir() == cache
    assert weights.cached_path("mobile_sam") == cache / "mobile_sam.pt"
    assert not weights.weights_present("mobile_sam")


def test_offline_error_names_url_file_and_folder(cache, monkeypatch):
    spec = REGISTRY["mobile_sam"]
    offline = ModelSpec(**{**spec.__dict__, "urls": ("http://127.0.0.1:9/mobile_sam.pt",)})
    with pytest.raises(WeightsNotFoundError) as err:
        weights.fetch_checkpoint(offline, progress=False)
    message = str(err.value)
    assert "http://127.0.0.1:9/mobile_sam.pt" in message
    assert str(cache / "mobile_sam.pt") in message and weights.CACHE_ENV in message


def test_model_without_url_says_where_to_get_it(cache):
    with pytest.raises(WeightsNotFoundError, match="Google Drive"):
        weights.fetch_checkpoint("mobilesamv2_objectaware")


def test_corrupt_cached_file_is_refused_by_hash(cache):
    cache.mkdir(parents=True)
    (cache / "mobile_sam.pt").write_bytes(b"not the weights")
    with pytest.raises(CheckpointError, match="sha256"):
        weights.fetch_checkpoint("mobile_sam")


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = Path("/tmp/napari_segany_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    torch.save({"image_encoder.x": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="Nothing was executed"):
        nsa.load_model("mobile_sam", checkpoint=path, device="cpu")
    assert not marker.exists()


def test_truncated_file_is_a_clear_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"a": torch.zeros(1000)}, good)
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        nsa.load_model("mobile_sam", checkpoint=bad, device="cpu")


def test_not_a_zip_nor_pickle(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError):
        nsa.load_model("mobile_sam", checkpoint=path, device="cpu")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not found"):
        nsa.load_model("mobile_sam", checkpoint=tmp_path / "nope.pt")


@pytest.mark.parity
def test_file_of_another_model_is_named(tmp_path, synth_state_dict):
    path = tmp_path / "mobile_sam.pt"
    torch.save(synth_state_dict("mobile_sam"), path)
    with pytest.raises(CheckpointError, match="looks like mobile_sam"):
        nsa.load_model("sam_vit_b", checkpoint=path, device="cpu")


@pytest.mark.parity
def test_state_dict_and_wrapped_file_load(tmp_path, synth_state_dict):
    sd = synth_state_dict("mobile_sam")
    model = nsa.load_model("mobile_sam", checkpoint=sd, device="cpu")
    assert model.spec.name == "mobile_sam" and not model.training
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    again = nsa.load_model("mobile_sam", checkpoint=wrapped, device="cpu")
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(again.state_dict()[key], model.state_dict()[key])


def test_zip_without_pickle_is_refused(tmp_path):
    path = tmp_path / "odd.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/readme.txt", "no pickle here")
    with pytest.raises(CheckpointError):
        nsa.load_model("mobile_sam", checkpoint=path, device="cpu")


def test_list_models_and_load_model_read_the_same_table(monkeypatch):
    """A model registered in REGISTRY (a plugin, a test) is listed and loadable alike."""
    from _everything import TINY_SAM, random_state_dict

    from napari_segany.models.registry import REGISTRY, list_models

    monkeypatch.setitem(REGISTRY, TINY_SAM.name, TINY_SAM)
    assert TINY_SAM.name in list_models() and TINY_SAM.name in list_models("promptable")
    model = weights.load_model(TINY_SAM.name, checkpoint=random_state_dict(TINY_SAM), device="cpu")
    assert model.spec is TINY_SAM
