"""The embedding cache: keys, LRU under a byte budget, a backing store, encoding with progress."""
from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
import torch

from napari_segany.engine.embeddings import (
    DEFAULT_BUDGET_BYTES, Embedding, EmbeddingCache, EmbeddingKey, encode_blocking, iter_encode,
    model_identity, normalisation_key, slice_digest,
)
from napari_segany.engine.embeddings.encoding import encoder_steps
from napari_segany.engine.errors import Cancelled
from napari_segany.engine.interactive import Predictor

from _fakes import fake_model


def entry(nbytes_mib=1):
    return Embedding(torch.zeros(1, 256, 32, nbytes_mib * 32), (64, 64))  # 1 MiB per unit


def key(i, model="m", norm=None):
    return EmbeddingKey(f"d{i}", model, norm)


def test_default_budget_is_one_gib():
    assert DEFAULT_BUDGET_BYTES == 1 << 30
    assert EmbeddingCache().budget_bytes == 1 << 30


def test_slice_digest_follows_content_shape_and_dtype():
    a = np.arange(64, dtype=np.uint16).reshape(8, 8)
    assert slice_digest(a) == slice_digest(a.copy())
    assert slice_digest(a) == slice_digest(np.asfortranarray(a))  # layout does not matter
    b = a.copy()
    b[3, 3] += 1
    assert slice_digest(b) != slice_digest(a)
    assert slice_digest(a.reshape(4, 16)) != slice_digest(a)
    assert slice_digest(a.astype(np.int16)) != slice_digest(a)


def test_key_parts_separate_entries():
    assert key(1) != key(1, model="other") != key(1, norm=(0.0, 1.0))
    assert normalisation_key((0, 255)) == (0.0, 255.0)
    assert normalisation_key(None) is None
    text = key(1, norm=(0.0, 10.5)).as_str()
    assert "/" not in text and "d1" in text


def test_lru_evicts_least_recently_used_within_budget():
    cache = EmbeddingCache(budget_bytes=3 << 20)
    for i in range(3):
        cache.put(key(i), entry())
    assert cache.get(key(0)) is not None  # 0 becomes most recent
    cache.put(key(3), entry())
    assert key(1) not in cache and key(0) in cache and key(3) in cache
    assert cache.nbytes == 3 << 20
    assert cache.hits == 1


def test_entry_larger_than_budget_is_not_kept():
    cache = EmbeddingCache(budget_bytes=1 << 20)
    cache.put(key(0), entry())
    cache.put(key(1), entry(2))
    assert key(1) not in cache and key(0) in cache


def test_replacing_an_entry_keeps_the_byte_count_right():
    cache = EmbeddingCache(budget_bytes=10 << 20)
    cache.put(key(0), entry())
    cache.put(key(0), entry(2))
    assert cache.nbytes == 2 << 20 and len(cache) == 1


def test_backing_store_is_asked_on_miss_and_fed_on_put():
    class Store(dict):
        def get(self, k):
            return dict.get(self, k)

        def put(self, k, e):
            self[k] = e

    store = Store()
    cache = EmbeddingCache(budget_bytes=1 << 20, backing_store=store)
    cache.put(key(0), entry())
    cache.put(key(1), entry())  # evicts 0 from memory, not from the store
    assert key(0) not in cache and key(0) in store
    assert cache.get(key(0)) is not None and key(0) in cache
    assert cache.get(key(9)) is None and cache.misses == 1


def test_discard_and_clear():
    cache = EmbeddingCache()
    for i in range(4):
        cache.put(key(i, model="a" if i % 2 else "b"), entry())
    assert cache.discard(lambda k: k.model == "a") == 2
    assert len(cache) == 2 and cache.nbytes == 2 << 20
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_model_identity_names_the_checkpoint_file(tmp_path):
    model = fake_model()
    path = tmp_path / "w.pt"
    path.write_bytes(b"x")
    model.checkpoint_path = str(path)
    first = model_identity(model)
    # content, not path: the file's sha256 (napari-segany-store relies on it)
    assert first == "fake_sam|sha256:" + hashlib.sha256(b"x").hexdigest()
    path.write_bytes(b"xy")  # a new file under the same name is another model
    assert model_identity(model) != first


def test_encoder_steps_are_the_repeated_blocks():
    model = fake_model()
    assert encoder_steps(model) == list(model.image_encoder.blocks)


def test_iter_encode_reports_progress_and_returns_the_embedding():
    predictor = Predictor(fake_model())
    rgb = np.zeros((40, 50, 3), np.uint8)
    gen = iter_encode(predictor, rgb)
    fractions = []
    while True:
        try:
            fractions.append(next(gen).fraction)
        except StopIteration as stop:
            embedding = stop.value
            break
    assert fractions == [0.25, 0.5, 0.75, 1.0]
    assert torch.equal(embedding.features, predictor.encode(rgb).features)
    assert torch.equal(encode_blocking(predictor, rgb).features, embedding.features)
    # hooks are removed afterwards: a plain encode reports nothing
    assert not any(b._forward_hooks for b in predictor.model.image_encoder.blocks)


def test_iter_encode_cancels_between_blocks():
    predictor = Predictor(fake_model())
    cancel = threading.Event()
    # hold the encoder thread before block 2 until the test has cancelled (no race)
    predictor.model.image_encoder.blocks[1].register_forward_pre_hook(
        lambda *_: cancel.wait(timeout=10))
    gen = iter_encode(predictor, np.zeros((40, 50, 3), np.uint8), cancel)
    next(gen)
    cancel.set()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass


def test_iter_encode_reraises_encoder_errors():
    predictor = Predictor(fake_model())

    def broken(x):
        raise RuntimeError("boom")

    predictor.model.encode = broken
    with pytest.raises(RuntimeError, match="boom"):
        list(iter_encode(predictor, np.zeros((40, 50, 3), np.uint8)))
