"""The on-disk embedding store: round trip, signatures, corruption, interruption, budget, threads,
and the content identity of model weights in the keys."""
from __future__ import annotations

import shutil
import threading
import warnings

import numpy as np
import pytest
import torch
from _everything import TINY_SAM, load_tiny, random_state_dict

from napari_segany.engine.weights import content_identity, load_model
from napari_segany.engine.embeddings import (
    default_store_dir, Embedding, EmbeddingCache, EmbeddingKey, EmbeddingStore, model_identity,
    slice_digest, StoreWarning,
)
from napari_segany.engine.interactive import Predictor


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_tiny()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 60, (120, 160, 3), dtype=np.uint8)
    img[30:80, 40:110] += 150
    return img


def key_of(image, model, norm=None, tiling=None):
    return EmbeddingKey(slice_digest(image), model_identity(model), norm, tiling)


def entry(seed=0, shape=(1, 256, 16, 16)):
    return Embedding(torch.randn(shape, generator=torch.Generator().manual_seed(seed)), (120, 160))


def decode(model, entry_, image_size=(120, 160)):
    predictor = Predictor(model)
    predictor.set_embedding(entry_)
    masks, scores, low_res = predictor.predict(point_coords=[[70, 50]], point_labels=[1])
    return masks, scores, low_res


# ------------------------------------------------------------------------------ round trip
def test_float32_round_trip_gives_the_outputs_of_a_fresh_computation(tmp_path, tiny, image):
    fresh = Predictor(tiny).encode(image)
    key = key_of(image, tiny)
    EmbeddingStore(tmp_path, dtype="float32").put(key, fresh)
    stored = EmbeddingStore(tmp_path).get(key)  # a new session: another store object
    assert stored.original_size == (120, 160)
    assert torch.equal(stored.features, fresh.features)
    for a, b in zip(decode(tiny, stored), decode(tiny, fresh)):
        np.testing.assert_array_equal(a, b)


def test_float16_round_trip_changes_outputs_by_rounding_only(tmp_path, tiny, image):
    fresh = Predictor(tiny).encode(image)
    key = key_of(image, tiny)
    store = EmbeddingStore(tmp_path)  # float16 by default
    store.put(key, fresh)
    stored = store.get(key)
    assert stored.features.dtype == torch.float32  # decoders always get float32
    # float16 keeps 11 significant bits: relative rounding <= 2^-11
    np.testing.assert_allclose(stored.features, fresh.features, rtol=2 ** -11, atol=1e-7)
    (m16, s16, l16), (m32, s32, l32) = decode(tiny, stored), decode(tiny, fresh)
    assert np.abs(l16 - l32).max() < 1e-2 and np.abs(s16 - s32).max() < 1e-3
    assert (m16 != m32).mean() < 1e-3


def test_each_tile_is_its_own_chunk_and_is_found_lazily(tmp_path):
    store = EmbeddingStore(tmp_path)
    tiling = lambda r, c: (64, 8, 3, 4, r, c)  # noqa: E731
    store.put(EmbeddingKey("s", "m|sha256:0", None, tiling(1, 2)), entry(1))
    assert store.has(EmbeddingKey("s", "m|sha256:0", None, tiling(1, 2)))
    assert not store.has(EmbeddingKey("s", "m|sha256:0", None, tiling(0, 0)))
    assert store.get(EmbeddingKey("s", "m|sha256:0", None, tiling(0, 0))) is None
    assert store.get(EmbeddingKey("s", "m|sha256:0", None, None)) is None  # untiled: other group
    chunks = [p for p in tmp_path.rglob("features/c/*/*/*/*/*") if p.is_file()]
    assert len(chunks) == 1  # one tile written, one chunk on disk


def test_keys_differing_in_any_part_never_share_an_entry(tmp_path):
    store = EmbeddingStore(tmp_path)
    base = EmbeddingKey("s", "m|sha256:0", (0.0, 255.0), None)
    store.put(base, entry(1))
    for other in (EmbeddingKey("t", base.model, base.normalisation, None),
                  EmbeddingKey("s", "m|sha256:1", base.normalisation, None),
                  EmbeddingKey("s", base.model, (0.0, 254.0), None),
                  EmbeddingKey("s", base.model, base.normalisation, (64, 8, 1, 1, 0, 0))):
        assert store.get(other) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain misses are silent
        assert store.get(base) is not None


# ------------------------------------------------------------------------------ trust
def test_a_group_written_for_other_data_is_never_used(tmp_path):
    store = EmbeddingStore(tmp_path)
    a = EmbeddingKey("aaaa", "m|sha256:0", None, None)
    b = EmbeddingKey("bbbb", "m|sha256:0", None, None)
    store.put(a, entry(1))
    # A store folder copied over another key's place (e.g. by hand): its signature says "aaaa".
    target = store.group_path(b)
    target.parent.mkdir(parents=True)
    shutil.copytree(store.group_path(a), target)
    fresh = EmbeddingStore(tmp_path)
    with pytest.warns(StoreWarning, match="written for other data"):
        assert fresh.get(b) is None
    fresh.put(b, entry(2))  # recomputed: the wrong group is replaced
    assert torch.equal(fresh.get(b).features, entry(2).features.half().float())
    assert torch.equal(fresh.get(a).features, entry(1).features.half().float())


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_chunk", "bad_metadata",
                                    "bad_meta_chunk"])
def test_a_corrupt_store_is_recomputed_with_a_warning(tmp_path, damage):
    store = EmbeddingStore(tmp_path)
    key = EmbeddingKey("s", "m|sha256:0", None, None)
    store.put(key, entry(1))
    group = store.group_path(key)
    chunk = next(p for p in (group / "features").rglob("*") if p.is_file() and p.name != "zarr.json")
    if damage == "garbage":
        chunk.write_bytes(np.random.default_rng(0).bytes(chunk.stat().st_size))
    elif damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    elif damage == "missing_chunk":
        chunk.unlink()  # zarr would silently read zeros: the checksum catches it
    elif damage == "bad_metadata":
        (group / "zarr.json").write_text("{not json")
    else:
        meta = next(p for p in (group / "meta").rglob("*") if p.is_file() and p.name != "zarr.json")
        meta.write_bytes(b"\x00\x01")
    fresh = EmbeddingStore(tmp_path)
    with pytest.warns(StoreWarning):
        assert fresh.get(key) is None
    cache = EmbeddingCache(backing_store=fresh)
    cache.put(key, entry(3))  # what a recomputation does
    assert torch.equal(EmbeddingStore(tmp_path).get(key).features, entry(3).features.half().float())


def test_an_interrupted_write_is_not_trusted_and_is_redone(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path)
    key = EmbeddingKey("s", "m|sha256:0", None, (64, 8, 1, 2, 0, 1))
    real_setitem = type(store._group_for_writing(key, entry(0), [(256, 16, 16)])["meta"]).__setitem__

    def killed(array, index, value):  # the process dies after the features, before "done"
        if array.basename == "meta":
            raise KeyboardInterrupt
        return real_setitem(array, index, value)

    monkeypatch.setattr(type(store._group_for_writing(key, entry(0), [(256, 16, 16)])["meta"]), "__setitem__", killed)
    with pytest.raises(KeyboardInterrupt):
        store.put(key, entry(1))
    monkeypatch.undo()
    fresh = EmbeddingStore(tmp_path)
    assert not fresh.has(key) and fresh.get(key) is None  # features on disk, but not done
    fresh.put(key, entry(2))
    assert fresh.has(key)
    assert torch.equal(fresh.get(key).features, entry(2).features.half().float())


def test_stale_partial_files_of_killed_writers_are_removed(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.put(EmbeddingKey("s", "m|sha256:0", None, None), entry(1))
    stale = tmp_path / "x" / "0.deadbeef.partial"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    import os

    os.utime(stale, (1, 1))
    assert store.remove_stale_partials() == 1 and not stale.exists()


# ------------------------------------------------------------------------------ cache + store
def test_the_memory_budget_holds_while_the_store_keeps_everything(tmp_path):
    store = EmbeddingStore(tmp_path, dtype="float32")
    cache = EmbeddingCache(budget_bytes=3 * entry().nbytes, backing_store=store)
    keys = [EmbeddingKey(f"s{i}", "m|sha256:0", None, None) for i in range(8)]
    for i, key in enumerate(keys):
        cache.put(key, entry(i))
        assert cache.nbytes <= cache.budget_bytes
    assert len(cache) == 3 and store.writes == 8
    got = cache.get(keys[0])  # evicted from memory, back from disk
    assert torch.equal(got.features, entry(0).features)
    assert cache.nbytes <= cache.budget_bytes and keys[0] in cache


def test_write_behind_from_several_threads(tmp_path):
    store = EmbeddingStore(tmp_path, write_behind=True)
    keys = [EmbeddingKey(f"s{i}", "m|sha256:0", None, (64, 8, 4, 2, i // 2, i % 2)) for i in range(8)]

    def writer(part):
        for i in part:
            store.put(keys[i], entry(i))
            assert store.get(keys[i]) is not None  # visible before it is on disk

    threads = [threading.Thread(target=writer, args=(range(k, 8, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush(timeout=60)
    fresh = EmbeddingStore(tmp_path)
    for i, key in enumerate(keys):
        assert torch.equal(fresh.get(key).features, entry(i).features.half().float())


def test_signatures_tell_which_settings_a_slice_was_stored_with(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.put(EmbeddingKey("s", "m|sha256:0", (10.0, 400.0), None), entry(1))
    sigs = store.signatures("m|sha256:0", "s")
    assert [s["normalisation"] for s in sigs] == [[10.0, 400.0]]
    assert store.signatures("m|sha256:0", "other") == []


def test_default_store_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SEGANY_STORE", str(tmp_path / "s"))
    assert default_store_dir() == tmp_path / "s"
    monkeypatch.delenv("NAPARI_SEGANY_STORE")
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "c"))
    assert default_store_dir() == tmp_path / "c" / "embeddings"
    monkeypatch.delenv("NAPARI_SEGANY_CACHE")
    assert default_store_dir().parts[-2:] == ("napari-segany", "embeddings")


# ------------------------------------------------------------------------------ model identity
def test_model_identity_is_the_checkpoint_content_not_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(content_identity, "DISK_MEMO_MIN_BYTES", 0)  # remember even tiny files
    content_identity._memo.clear()
    a = tmp_path / "a" / "tiny.pt"
    a.parent.mkdir()
    torch.save(random_state_dict(TINY_SAM), a)
    b = tmp_path / "b.pt"
    shutil.copy(a, b)
    model_a = load_model(TINY_SAM, checkpoint=a, device="cpu")
    model_b = load_model(TINY_SAM, checkpoint=b, device="cpu")
    assert model_identity(model_a) == model_identity(model_b)  # moved/copied: same key
    assert model_identity(model_a).startswith("tiny_sam|sha256:")
    # remembered on disk for the next session (keyed on path, size and mtime)
    content_identity._memo.clear()
    assert (tmp_path / "cache" / "weights" / "digests.json").is_file()
    calls = []
    monkeypatch.setattr("napari_segany.engine.weights.cache.sha256_of", lambda p: calls.append(p))
    assert model_identity(model_a) == model_identity(model_b) and calls == []


def test_weights_given_in_memory_are_identified_by_their_tensors():
    sd0, sd1 = random_state_dict(TINY_SAM, 0), random_state_dict(TINY_SAM, 1)
    first = load_model(TINY_SAM, checkpoint=sd0, device="cpu")
    again = load_model(TINY_SAM, checkpoint=sd0, device="cpu")
    other = load_model(TINY_SAM, checkpoint=sd1, device="cpu")
    assert model_identity(first) == model_identity(again) != model_identity(other)


def test_an_official_file_verified_by_the_weights_cache_is_not_hashed_again(tmp_path, monkeypatch):
    from napari_segany.models.registry import ModelSpec

    path = tmp_path / "official.pt"
    path.write_bytes(b"weights")
    stat = path.stat()
    spec = ModelSpec(name="x", family="sam", task="promptable", builder="m:f",
                     file_name="official.pt", license="-", checkpoint_format="state_dict",
                     sha256="ab" * 32)
    path.with_name("official.pt.sha256-ok").write_text(f"{'ab' * 32} {stat.st_size} {stat.st_mtime_ns}")
    monkeypatch.setattr("napari_segany.engine.weights.cache.sha256_of", lambda p: pytest.fail("hashed"))
    assert content_identity.file_digest(path, spec) == "ab" * 32


def test_multi_level_embeddings_round_trip_and_one_level_stores_stay_readable(tmp_path):
    """SAM 2 embeddings have three levels; stores of one level (format 1) read as before."""
    import zarr

    store = EmbeddingStore(tmp_path, dtype="float32")
    gen = torch.Generator().manual_seed(0)
    levels = [torch.randn(1, 256, 16, 16, generator=gen), torch.randn(1, 32, 64, 64, generator=gen),
              torch.randn(1, 64, 32, 32, generator=gen)]
    many = EmbeddingKey("s", "sam2_t|sha256:0")
    store.put(many, Embedding(levels, (120, 160), model="sam2_t", family="sam2"))
    got = EmbeddingStore(tmp_path).get(many)
    assert all(torch.equal(a, b) for a, b in zip(got.levels, levels)) and len(got.levels) == 3
    assert (got.original_size, got.model, got.family) == ((120, 160), "sam2_t", "sam2")
    assert zarr.open_group(str(store.group_path(many))).attrs["signature"]["format"] == 2

    one = EmbeddingKey("t", "m|sha256:0")
    store.put(one, entry(1))
    group = zarr.open_group(str(store.group_path(one)), mode="r+")
    assert group.attrs["signature"]["format"] == 1
    group.attrs.put({"signature": group.attrs["signature"]})  # as written before levels existed
    assert torch.equal(EmbeddingStore(tmp_path).get(one).features, entry(1).features)

    store.put(many, Embedding(levels[:1], (120, 160)))  # another level count: the group is rebuilt
    assert len(EmbeddingStore(tmp_path).get(many).levels) == 1
