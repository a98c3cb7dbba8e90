"""On-disk store of image embeddings (zarr v3), the ``backing_store`` of :class:`EmbeddingCache`.

Layout of a store folder (one zarr group per slice content x model x normalisation x tiling)::

    STORE/zarr.json                            root group, attrs {"napari_segany_store": 1}
    STORE/<model>/<slice digest>/<settings>/   model = hash of "name|sha256:<checkpoint>",
                                               settings = hash of normalisation + tiling grid
        attrs["signature"]   format, model, slice digest, normalisation, tiling grid, dtype
        attrs["embedding"]   levels (how many feature arrays), model name, family
        features  (ny, nx, C, h, w) float16 or float32, one chunk per tile (whole image: 1 x 1)
        level_1.. (ny, nx, C_i, h_i, w_i) the further levels of multi-level embeddings (SAM 2)
        meta      (ny, nx, 4) int64, one chunk per tile: done flag, tile height, width,
                  checksum (of all levels)

Format 1 groups hold one level (every store written before multi-level embeddings reads as
it is); groups of several levels are written as format 2, which older readers recompute
instead of misreading.

Slices are found by the digest of their pixels, not by their position in a file, so the GUI
finds what ``napari-segany embed`` wrote for the same stack, in any order or file format.

Trust rules (the store is a cache: it may be slower, never wrong):

* a group is used only when its signature equals the key's (else a warning, and it is
  rebuilt at the next write);
* a tile counts only once its ``meta`` chunk says done, and that chunk is written *after*
  the features chunk (zarr writes each chunk atomically: temporary file + rename), so an
  interrupted write is recomputed, never trusted; resuming skips the done tiles;
* the features are checked against the checksum in ``meta``; anything unreadable, corrupt or
  inconsistent gives a :class:`StoreWarning` and a recomputation, never an exception.

``dtype="float16"`` (default) halves the disk space; decoding from float16 embeddings
changes low-res logits by about 1e-3 and flips about 1e-4 of mask pixels
(``docs/embeddings.md``); ``float32`` reproduces a fresh computation exactly.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .embedding import Embedding
from .keys import EmbeddingKey

FORMAT = 1  # groups of one feature level (and the root's format)
MULTI_LEVEL_FORMAT = 2  # groups of several levels (level_1...): older readers recompute them
READABLE_FORMATS = (FORMAT, MULTI_LEVEL_FORMAT)
STORE_ENV = "NAPARI_SEGANY_STORE"
log = logging.getLogger(__name__)


class StoreWarning(UserWarning):
    """A store entry was ignored (corrupt, partial, written for other data); it is recomputed."""


def default_store_dir() -> Path:
    """``$NAPARI_SEGANY_STORE``; else ``<cache root>/embeddings``: ``$NAPARI_SEGANY_CACHE/embeddings``
    when that is set, else ``<user cache>/napari-segany/embeddings`` (``~/.cache/...`` on Linux),
    beside ``<cache root>/weights``."""
    override = os.environ.get(STORE_ENV)
    if override:
        return Path(override).expanduser()
    from ..weights import cache_root

    return cache_root() / "embeddings"


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _mark_used(group_path: Path) -> None:
    """Refresh the entry's last-use time (once per session): pruning removes the least
    recently used entries first (:mod:`.housekeeping`)."""
    try:
        os.utime(group_path / "zarr.json")
    except OSError:  # a read-only store is still usable
        pass


def _checksum(*arrays: np.ndarray) -> int:
    """A 63-bit digest of the arrays' bytes in order (fits the int64 ``meta`` column)."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return int.from_bytes(digest.digest(), "little") >> 1


def _level_name(i: int) -> str:
    return "features" if i == 0 else f"level_{i}"


def tile_position(tiling) -> tuple[tuple[int, int], tuple[int, int], object]:
    """Split ``EmbeddingKey.tiling`` into (grid (ny, nx), tile (row, col), grid settings).

    ``None`` is the whole image (a 1 x 1 grid); a tiled key is ``(tile, halo, ny, nx, row,
    col)`` (see :meth:`napari_segany.engine.tiling.TileGrid.key`).
    """
    if tiling is None:
        return (1, 1), (0, 0), None
    tile, halo, ny, nx, row, col = (int(v) for v in tiling)
    return (ny, nx), (row, col), [tile, halo, ny, nx]


class EmbeddingStore:
    """A zarr folder of embeddings, by :class:`EmbeddingKey`; ``get``/``put`` as a backing store.

    Thread-safe: GUI workers write from their threads.  ``write_behind=True`` queues writes to
    one background thread (a ``put`` on the GUI thread then costs nothing); :meth:`flush`
    waits for them.  Reading a 1024 x 1024 image's embedding takes a few ms.
    """

    def __init__(self, root=None, dtype: str = "float16", write_behind: bool = False):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', not {dtype!r}.")
        self.root = Path(root).expanduser() if root is not None else default_store_dir()
        self.dtype = dtype
        self._lock = threading.RLock()
        self._groups: dict[str, object] = {}  # group path -> opened zarr group
        self._warned: set[str] = set()
        self._pending: dict[EmbeddingKey, Embedding] = {}
        self._queue: queue.Queue | None = None
        self.writes = self.reads = 0
        if write_behind:
            self._queue = queue.Queue()
            threading.Thread(target=self._writer, name="segany-store-writer", daemon=True).start()

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.root)!r}, dtype={self.dtype!r})"

    # --- the backing-store protocol ---------------------------------------------------------
    def get(self, key: EmbeddingKey) -> Embedding | None:
        """The stored embedding of ``key`` (float32, on the CPU), or None."""
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            return pending
        try:
            group = self._open(key)
            if group is None:
                return None
            (_, _), (row, col), _ = tile_position(key.tiling)
            done, h, w, checksum = (int(v) for v in group["meta"][row, col])
            if done != 1:
                return None  # never written, or interrupted before it was complete
            about = dict(group.attrs.get("embedding", {}))
            levels = [np.asarray(group[_level_name(i)][row, col])
                      for i in range(int(about.get("levels", 1)))]
            if _checksum(*levels) != checksum:
                self._warn(key, "its stored embedding is corrupt (checksum mismatch)")
                return None
        except Exception as exc:  # noqa: BLE001 - a cache never breaks segmentation
            self._forget(key)
            self._warn(key, f"it cannot be read ({type(exc).__name__}: {exc})")
            return None
        self.reads += 1
        tensors = [torch.from_numpy(a.astype(np.float32, copy=False))[None] for a in levels]
        return Embedding(tensors, (h, w), model=about.get("model", key.model.split("|")[0]),
                         family=about.get("family", ""))

    def put(self, key: EmbeddingKey, entry: Embedding) -> None:
        """Write one embedding (now, or by the writer thread with ``write_behind``)."""
        if self._queue is None:
            self._write(key, entry)
            return
        with self._lock:
            self._pending[key] = entry
        self._queue.put((key, entry))

    def has(self, key: EmbeddingKey) -> bool:
        """True when ``key`` is stored completely (reads only the small ``meta`` chunk)."""
        try:
            group = self._open(key)
            (_, _), (row, col), _ = tile_position(key.tiling)
            return group is not None and int(group["meta"][row, col][0]) == 1
        except Exception:  # noqa: BLE001
            self._forget(key)
            return False

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued writes are on disk (``write_behind`` only)."""
        if self._queue is None:
            return
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._pending:
                    return
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"{len(self._pending)} embeddings are still being written.")
            time.sleep(0.005)

    # --- discovery ---------------------------------------------------------------------------
    def signatures(self, model: str, slice_digest: str) -> list[dict]:
        """The signatures of every setting stored for a slice, e.g. to tell a GUI user which
        contrast limits the store was computed with."""
        folder = self.root / _short_hash(model) / slice_digest
        found = []
        for sub in sorted(folder.glob("*/zarr.json")) if folder.is_dir() else []:
            try:
                sig = json.loads(sub.read_text())["attributes"]["signature"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if sig.get("model") == model and sig.get("slice_digest") == slice_digest:
                found.append(sig)
        return found

    def remove_stale_partials(self, older_than_s: float = 600.0) -> int:
        """Delete temporary chunk files left by killed writers (``*.partial``); return how many."""
        limit, removed = time.time() - older_than_s, 0
        for path in self.root.rglob("*.partial") if self.root.is_dir() else []:
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    # --- internals ---------------------------------------------------------------------------
    def group_path(self, key: EmbeddingKey) -> Path:
        _, _, grid = tile_position(key.tiling)
        settings = json.dumps([key.normalisation, grid])
        return self.root / _short_hash(key.model) / key.slice_digest / _short_hash(settings)

    def signature(self, key: EmbeddingKey, levels: int = 1) -> dict:
        """What a group written for ``key`` (with ``levels`` feature levels) says it holds."""
        return {"format": FORMAT if levels == 1 else MULTI_LEVEL_FORMAT, **self._identity(key)}

    def _identity(self, key: EmbeddingKey) -> dict:
        _, _, grid = tile_position(key.tiling)
        return {"model": key.model, "slice_digest": key.slice_digest,
                "normalisation": json.loads(json.dumps(key.normalisation)), "tiling": grid}

    def _open(self, key: EmbeddingKey, quiet: bool = False):
        """The key's group if it exists and was written for exactly this key, else None."""
        path = self.group_path(key)
        with self._lock:
            group = self._groups.get(str(path))
        if group is not None:
            return group
        if not (path / "zarr.json").is_file():
            return None
        import zarr

        group = zarr.open_group(str(path), mode="r+")
        stored = dict(group.attrs.get("signature", {}))
        stored.pop("dtype", None)
        if stored.pop("format", None) not in READABLE_FORMATS or stored != self._identity(key):
            if not quiet:
                self._warn(key, "the store entry was written for other data, model or settings")
            return None
        _mark_used(path)
        with self._lock:
            self._groups[str(path)] = group
        return group

    def _write(self, key: EmbeddingKey, entry: Embedding) -> None:
        try:
            levels = [level.detach().to("cpu", torch.float32).numpy()[0] for level in entry.levels]
            group = self._group_for_writing(key, entry, [a.shape for a in levels])
            levels = [a.astype(group["features"].dtype, copy=False) for a in levels]
            (_, _), (row, col), _ = tile_position(key.tiling)
            for i, array in enumerate(levels):
                group[_level_name(i)][row, col] = array
            # Marked complete only now that the features are on disk (see module docstring).
            h, w = entry.original_size
            group["meta"][row, col] = np.array([1, h, w, _checksum(*levels)], np.int64)
            self.writes += 1
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop segmentation
            self._forget(key)
            self._warn(key, f"it could not be written ({type(exc).__name__}: {exc})", writing=True)

    def _group_for_writing(self, key: EmbeddingKey, entry: Embedding, shapes: list[tuple]):
        with self._lock:
            try:
                group = self._open(key, quiet=True)
                stored = ([group[_level_name(i)].shape[2:] for i in range(len(shapes))]
                          if group is not None else [])
                if stored == [tuple(shape) for shape in shapes] and \
                        int(group.attrs.get("embedding", {}).get("levels", 1)) == len(shapes):
                    return group
            except Exception:  # noqa: BLE001 - unreadable metadata or other levels: rebuild
                pass
            return self._create(key, entry, shapes)

    def _create(self, key: EmbeddingKey, entry: Embedding, shapes: list[tuple]):
        import zarr

        path = self.group_path(key)
        self._forget(key)
        if path.exists():  # wrong signature, unreadable or another embedding size: replace
            shutil.rmtree(path, ignore_errors=True)
        root = zarr.open_group(str(self.root), mode="a")
        if "napari_segany_store" not in root.attrs:
            root.attrs["napari_segany_store"] = FORMAT
        parent = root.require_group(str(path.parent.relative_to(self.root).as_posix()))
        signature = {**self.signature(key, len(shapes)), "dtype": self.dtype}
        about = {"levels": len(shapes), "model": entry.model, "family": entry.family}
        group = parent.create_group(path.name, overwrite=True,
                                    attributes={"signature": signature, "embedding": about})
        (ny, nx), _, _ = tile_position(key.tiling)
        for i, shape in enumerate(shapes):
            group.create_array(_level_name(i), shape=(ny, nx, *shape), dtype=self.dtype,
                               chunks=(1, 1, *shape), fill_value=0)
        group.create_array("meta", shape=(ny, nx, 4), dtype="int64", chunks=(1, 1, 4),
                           fill_value=0)
        self._groups[str(path)] = group
        return group

    def _forget(self, key: EmbeddingKey) -> None:
        with self._lock:
            self._groups.pop(str(self.group_path(key)), None)

    def _warn(self, key: EmbeddingKey, why: str, writing: bool = False) -> None:
        path = self.group_path(key)
        what = (f"Embedding store {self.root}: {why}; "
                + ("continuing without storing it." if writing else "it is recomputed."))
        tag = f"{path}|{why}"
        with self._lock:
            if tag in self._warned:
                log.info(what)
                return
            self._warned.add(tag)
        warnings.warn(f"{what} ({path.relative_to(self.root)})", StoreWarning, stacklevel=3)

    def _writer(self) -> None:
        while True:
            key, entry = self._queue.get()
            try:
                self._write(key, entry)
            finally:
                with self._lock:
                    if self._pending.get(key) is entry:
                        del self._pending[key]
