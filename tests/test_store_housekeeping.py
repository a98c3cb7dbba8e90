"""Keeping the embedding store in hand: sizes per model, pruning by last use, the CLI."""
from __future__ import annotations

import os
import time

import pytest
import torch

from napari_segany.cli import main
from napari_segany.engine.embeddings import (
    Embedding, EmbeddingKey, EmbeddingStore, prune_store, store_entries,
)
from napari_segany.engine.embeddings.housekeeping import parse_size

MODEL = "tiny_sam|sha256:0123"


def key(digest: str, model: str = MODEL) -> EmbeddingKey:
    return EmbeddingKey(model=model, slice_digest=digest, normalisation=(0.0, 255.0))


def fill(root, digests, model=MODEL) -> EmbeddingStore:
    store = EmbeddingStore(root, dtype="float32")
    for i, digest in enumerate(digests):
        features = torch.full((1, 8, 16, 16), float(i))
        store.put(key(digest, model), Embedding(features, (64, 64)))
    return store


def age(store: EmbeddingStore, digest: str, seconds_ago: float) -> None:
    marker = store.group_path(key(digest)) / "zarr.json"
    stamp = time.time() - seconds_ago
    os.utime(marker, (stamp, stamp))


def test_entries_and_pruning_remove_the_least_recently_used(tmp_path):
    store = fill(tmp_path / "store", ["a" * 16, "b" * 16, "c" * 16])
    for digest, seconds in (("a" * 16, 300), ("b" * 16, 100), ("c" * 16, 200)):
        age(store, digest, seconds)
    entries = store_entries(store.root)
    assert [e.path.parent.name for e in entries] == ["a" * 16, "c" * 16, "b" * 16]
    assert {e.model for e in entries} == {MODEL} and all(e.nbytes > 0 for e in entries)

    deleted, left = prune_store(store.root, entries[1].nbytes + entries[2].nbytes)
    assert [e.path.parent.name for e in deleted] == ["a" * 16]
    assert left == sum(e.nbytes for e in store_entries(store.root))
    fresh = EmbeddingStore(store.root, dtype="float32")
    assert fresh.get(key("a" * 16)) is None  # gone: it would be recomputed
    assert float(fresh.get(key("b" * 16)).features.max()) == 1.0


def test_reading_an_entry_marks_it_used(tmp_path):
    store = fill(tmp_path / "store", ["a" * 16, "b" * 16])
    age(store, "a" * 16, 500)
    age(store, "b" * 16, 100)
    EmbeddingStore(store.root, dtype="float32").get(key("a" * 16))  # a new session reads "a"
    assert [e.path.parent.name for e in store_entries(store.root)] == ["b" * 16, "a" * 16]


def test_store_command_lists_prunes_and_clears(tmp_path, capsys):
    root = tmp_path / "store"
    fill(root, ["a" * 16, "b" * 16])
    fill(root, ["c" * 16], model="other|sha256:9")
    assert main(["store", "--store", str(root)]) == 0
    out = capsys.readouterr().out
    assert "tiny_sam" in out and "other" in out and "3 entries" in out
    assert main(["store", "--store", str(root), "--prune-to", "0.01M"]) == 0
    assert "deleted" in capsys.readouterr().out
    assert main(["store", "--store", str(root), "--clear"]) == 0
    assert "0 entries" in capsys.readouterr().out and store_entries(root) == []


def test_sizes_and_bad_arguments(tmp_path, capsys):
    assert parse_size("500M") == 500 << 20 and parse_size("1.5GiB") == int(1.5 * (1 << 30))
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError, match="500M"):
        parse_size("a lot")
    with pytest.raises(SystemExit):
        main(["store", "--store", str(tmp_path), "--prune-to", "lots"])
    assert "--prune-to: Cannot read the size 'lots'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["store", "--store", str(tmp_path / "nowhere")])
    assert "no such folder" in capsys.readouterr().err
