"""load_model from a file whose keys need no mapping (``map_keys`` is the identity): every
weight is loaded.  Loading with ``consume=True`` once emptied the dict it was loading from
in that case, leaving the network's random initialisation in place without an error."""
from __future__ import annotations

import torch

from napari_segany.engine.weights import load_model
from napari_segany.models import registry
from napari_segany.models.registry import ModelSpec
from napari_segany.models.sam.build import build_sam_vit

KWARGS = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=256)


def test_identity_keys_load_every_weight(tmp_path, monkeypatch):
    spec = ModelSpec(
        name="tiny_identity_sam", family="sam", task=registry.PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=KWARGS,
        input_size=256, file_name="tiny_identity_sam.pt", license="Apache-2.0 (test weights)",
        checkpoint_format="state_dict", description="identity keys")
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    assert spec.map_keys({"a": 1}) == {"a": 1} and not spec.key_mapper
    torch.manual_seed(0)
    saved = build_sam_vit(**KWARGS).state_dict()
    path = tmp_path / "tiny_identity_sam.pt"
    torch.save(saved, path)
    loaded = load_model(spec.name, checkpoint=path, device="cpu").state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(saved[k].float(), loaded[k].float()) for k in saved)
