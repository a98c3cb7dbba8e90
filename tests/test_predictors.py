"""One interface for every promptable predictor, one rule choosing it, one typed embedding.

* ``Predictor``, ``TiledPredictor`` and ``FastSAMPredictor`` implement the declared
  ``PromptablePredictor`` protocol, and the one ``InteractiveSession`` drives each of them;
* ``predictor_for`` picks the predictor by the model's task and the tiling rule;
* an ``Embedding`` holds one or several feature levels; ``ModelSpec.encoder_input_size``
  lets an encoder take a smaller image than the prompt frame (EfficientViT-SAM).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from _everything import TINY_SAM, cells_image
from _fakes import fake_model
from napari_segany.engine.embeddings import Embedding
from napari_segany.engine.interactive import (
    FastSAMPredictor, ImagePredictor, InteractiveSession, ObjectPrompt, Predictor,
    PromptablePredictor, transform_for,
)
from napari_segany.engine.tiling import TiledPredictor, TilingSettings, predictor_for, tiles_for

pytestmark = pytest.mark.usefixtures("one_thread")


def test_predictor_for_follows_the_task_and_the_tiling_rule(tiny_sam, random_fastsam):
    assert type(predictor_for(tiny_sam)) is Predictor
    assert type(predictor_for(tiny_sam, (300, 300))) is Predictor  # below the threshold (2048)
    tiled = predictor_for(tiny_sam, (3000, 200))
    assert isinstance(tiled, TiledPredictor) and (tiled.tile, tiled.halo) == (256, 32)
    small = TilingSettings(tile=128, halo=16, threshold=200)
    assert isinstance(predictor_for(tiny_sam, (300, 300), small), TiledPredictor)
    assert type(predictor_for(tiny_sam, (3000, 300), TilingSettings(enabled=False))) is Predictor
    assert isinstance(predictor_for(random_fastsam, (5000, 5000)), FastSAMPredictor)  # never tiled
    assert tiles_for(random_fastsam, (5000, 5000)) is None
    assert len(tiles_for(tiny_sam, (600, 600), small)) > 1


def test_every_predictor_has_the_declared_interface(tiny_sam, random_fastsam):
    image = cells_image()
    predictors = [Predictor(tiny_sam), FastSAMPredictor(random_fastsam)]
    for predictor in predictors:
        assert isinstance(predictor, ImagePredictor) and isinstance(predictor, PromptablePredictor)
    tiled = TiledPredictor(tiny_sam, tile=128, halo=16)
    tiled.set_image(np.tile(image, (2, 2)))
    assert isinstance(tiled, PromptablePredictor) and not isinstance(tiled, ImagePredictor)


def test_one_session_drives_the_plain_and_the_tiled_predictor_alike():
    model = fake_model()  # geometric: a disk around the point, whatever the predictor
    image = np.zeros((64, 64), np.uint8)
    plain = Predictor(model)
    plain.set_embedding(plain.encode(np.repeat(image[..., None], 3, -1)))
    tiled = TiledPredictor(model, tile=64, halo=8)
    tiled.set_image(np.zeros((64, 64), np.uint8))  # one tile: the same image as the plain one
    prompt = ObjectPrompt(("a",), np.array([[30.0, 20.0]]), np.array([1]))
    masks = []
    for predictor in (plain, tiled):
        session = InteractiveSession(predictor)
        session.set_prompts([prompt])
        masks.append(session.masks[0])
        assert session.cycle_candidate().candidate != masks[-1].candidate
    assert masks[0].bbox == masks[1].bbox and np.array_equal(masks[0].crop, masks[1].crop)


def test_an_embedding_holds_levels_and_its_sizes(tiny_sam):
    predictor = Predictor(tiny_sam)
    rgb = np.repeat(cells_image().astype(np.uint8)[..., None], 3, -1)
    embedding = predictor.encode(rgb)
    assert embedding.levels[0] is embedding.features and len(embedding.levels) == 1
    assert embedding.original_size == rgb.shape[:2] and embedding.model == "tiny_sam"
    assert embedding.input_size == predictor.transform.input_size(rgb.shape[:2])
    assert embedding.nbytes == embedding.features.nbytes
    levels = Embedding([torch.zeros(1, 256, 8, 8), torch.zeros(1, 32, 32, 32)], (30, 40))
    assert levels.nbytes == (256 * 64 + 32 * 1024) * 4 and levels.features.shape[1] == 256
    predictor.set_embedding(embedding)
    assert torch.equal(predictor.get_image_embedding(), embedding.features)
    predictor.set_embedding(embedding.features, rgb.shape[:2])  # SamPredictor-style: a tensor
    assert predictor.input_size == embedding.input_size


def test_the_encoder_may_take_a_smaller_image_than_the_prompt_frame():
    """EfficientViT-SAM: a 512-px encoder input in a 1024-px prompt frame."""
    spec = dataclasses.replace(TINY_SAM, input_size=1024, encoder_input_size=512)
    same = dataclasses.replace(TINY_SAM, input_size=1024)
    small, plain = transform_for(spec), transform_for(same)
    assert spec.encoder_size == 512 and same.encoder_size == 1024  # the default: unchanged
    rgb = np.zeros((300, 600, 3), np.uint8)
    assert small.to_model_input(rgb)[0].shape == (1, 3, 512, 512)
    assert plain.to_model_input(rgb)[0].shape == (1, 3, 1024, 1024)
    assert small.input_size((300, 600)) == plain.input_size((300, 600)) == (512, 1024)
    np.testing.assert_array_equal(small.apply_coords([[600, 300]], (300, 600)), [[1024, 512]])
    low = torch.zeros(1, 1, 256, 256)
    assert small.postprocess_masks(low, (512, 1024), (300, 600)).shape[-2:] == (300, 600)
