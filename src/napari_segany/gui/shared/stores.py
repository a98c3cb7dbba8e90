"""The on-disk embedding store of an image layer, shared by both docks.

The Segment Anything dock remembers the store folder of each image in its metadata
(``layer.metadata['napari_segany_store']``); the Segment Everything dock reads and writes the
same embeddings.  One store per folder in the process: each has a writer thread for the life
of the process, so re-opened docks and folders chosen again share it instead of adding one.
"""
from __future__ import annotations

from pathlib import Path

from ...engine.embeddings import EmbeddingStore

METADATA_KEY = "napari_segany_store"
_STORES: dict[Path, EmbeddingStore] = {}


def store_for(folder) -> EmbeddingStore:
    folder = Path(folder).expanduser()
    store = _STORES.get(folder)
    if store is None:
        store = _STORES[folder] = EmbeddingStore(folder, write_behind=True)
    return store


def layer_store(layer) -> EmbeddingStore | None:
    """The store ``layer``'s metadata names, if any."""
    folder = layer.metadata.get(METADATA_KEY)
    return store_for(folder) if folder else None


def remember_store(layer, store: EmbeddingStore | None) -> None:
    """Name ``store`` (None: none) in ``layer``'s metadata."""
    if store is not None:
        layer.metadata[METADATA_KEY] = str(store.root)
    else:
        layer.metadata.pop(METADATA_KEY, None)
