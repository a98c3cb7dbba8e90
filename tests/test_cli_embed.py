"""``napari-segany embed``: stacks and large planes into the store, resume after an interruption,
keys the widget finds again (napari's default contrast limits), actionable errors."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from _everything import TINY_SAM
from PIL import Image

from napari_segany.cli import main
from napari_segany.engine.images.contrast import napari_contrast_limits
from napari_segany.engine.embeddings import (
    EmbeddingCache, EmbeddingKey, EmbeddingStore, model_identity, slice_digest,
)
from napari_segany.engine.images import to_uint8_rgb
from napari_segany.engine.interactive import Predictor
from napari_segany.engine.tiling import TiledPredictor
from napari_segany.engine.weights import load_model
from napari_segany.models import registry


@pytest.fixture(autouse=True)
def setup(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM.name, TINY_SAM)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def stack(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(100, 4000, (4, 120, 150)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    return path, data


def args(tiny_file, out, *extra):
    return ["--model", "tiny_sam", "--checkpoint", str(tiny_file), "--device", "cpu",
            "--out", str(out), "-q", *extra]


def test_a_stack_is_stored_as_the_widget_would_compute_it(stack, tmp_path, tiny_file, capsys):
    path, data = stack
    out = tmp_path / "store"
    assert main(["embed", str(path), *args(tiny_file, out, "--dtype", "float32")]) == 0
    assert "4 embedding(s) computed, 0 reused" in capsys.readouterr().err
    model = load_model(TINY_SAM, checkpoint=tiny_file, device="cpu")
    limits = (float(data.min()), float(data.max()))  # napari's default contrast limits
    cache = EmbeddingCache(backing_store=EmbeddingStore(out))
    predictor = Predictor(model)
    for plane in data:  # the widget's key: slice digest, model, layer contrast limits
        entry = cache.get(EmbeddingKey(slice_digest(plane), model_identity(model), limits))
        fresh = predictor.encode(to_uint8_rgb(plane, limits))
        assert entry is not None and torch.equal(entry.features, fresh.features)
        assert entry.original_size == (120, 150)


def test_resume_after_an_interruption_keeps_finished_slices(stack, tmp_path, tiny_file, capsys,
                                                            monkeypatch):
    path, _ = stack
    out = tmp_path / "store"
    real_put, calls = EmbeddingStore.put, []

    def put_then_die(store, key, entry):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl+C during the third slice
        calls.append(key)
        real_put(store, key, entry)

    monkeypatch.setattr(EmbeddingStore, "put", put_then_die)
    assert main(["embed", str(path), *args(tiny_file, out)]) == 130
    assert "interrupted: finished work was kept" in capsys.readouterr().err
    monkeypatch.setattr(EmbeddingStore, "put", real_put)
    assert main(["embed", str(path), *args(tiny_file, out)]) == 0
    err = capsys.readouterr().err
    assert "2 embedding(s) already in the store: skipped" in err and "2 embedding(s) computed" in err
    assert main(["embed", str(path), *args(tiny_file, out)]) == 0
    assert "0 embedding(s) computed, 4 reused" in capsys.readouterr().err


def test_large_planes_are_tiled_and_png_npy_inputs_work(tmp_path, tiny_file, capsys):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 255, (600, 540, 3), dtype=np.uint8)  # > threshold 512: tiled
    np.save(tmp_path / "big.npy", big)
    Image.fromarray(big[:100, :100, 0]).save(tmp_path / "small.png")
    out = tmp_path / "store"
    assert main(["embed", str(tmp_path / "big.npy"), str(tmp_path / "small.png"),
                 *args(tiny_file, out, "--halo", "32", "--tile-threshold", "512")]) == 0
    model = load_model(TINY_SAM, checkpoint=tiny_file, device="cpu")
    tiled = TiledPredictor(model, halo=32, store=EmbeddingStore(out))
    tiled.set_image(big, (0.0, 255.0))
    assert f"{len(tiled.grid) + 1} embedding(s) computed" in capsys.readouterr().err
    assert list(tiled.iter_embed()) == [] and tiled.encodes == 0  # every tile is stored
    assert main(["embed", str(tmp_path / "big.npy"), *args(tiny_file, out, "--no-tiling")]) == 0
    assert "1 embedding(s) computed" in capsys.readouterr().err


def test_the_default_normalisation_is_napari_s_default_contrast_limits():
    from napari.layers.utils.layer_utils import calc_data_range

    rng = np.random.default_rng(2)
    cases = [(rng.integers(5, 900, (3, 40, 50)).astype(np.uint16), False),
             (rng.random((2, 30, 40, 3)).astype(np.float32), True),
             (rng.integers(0, 255, (30, 40, 3)).astype(np.uint8), True),
             (rng.integers(-50, 50, (12, 1000, 1000)).astype(np.int16), False),
             (np.full((20, 20), 7, np.uint16), False)]
    for data, rgb in cases:
        assert napari_contrast_limits(data, rgb) == tuple(float(v) for v in calc_data_range(data, rgb))


def test_errors_say_what_to_do(tmp_path, tiny_file, capsys, stack):
    path, _ = stack
    assert main(["embed", str(tmp_path / "nope.tif"), *args(tiny_file, tmp_path)]) == 2
    assert "nope.tif is not an image file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["embed", str(path), *args(tiny_file, tmp_path, "--tile", "64", "--halo", "30")])
    assert "leave no core" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["embed", str(path), "--model", "fastsam_s", "--out", str(tmp_path)])
    assert "no image encoder" in capsys.readouterr().err
