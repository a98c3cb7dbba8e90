"""Keeping an embedding store's size in hand: what it holds, and pruning by last use.

A store grows by about 2 MiB per slice or tile (float16) and never deletes anything by
itself, because the same folder may serve several sessions and processes.  These functions
list its entries (one per slice content x model x settings: the unit the store reads and
writes, see :mod:`.store`) and delete the least recently used ones until the store
fits a size.  "Used" is the modification time of the entry's ``zarr.json``, which
:class:`~..embeddings.EmbeddingStore` refreshes the first time a session opens the entry.

Deleting an entry another process is reading is safe: the store is a cache, a missing or
half-deleted entry reads as absent (or fails its checks) and is recomputed.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class StoreEntry:
    """One stored slice (or tiled plane) for one model and one normalisation/tiling."""

    path: Path
    model: str  # "name|sha256:<checkpoint digest>" as in the signature; "?" if unreadable
    nbytes: int
    last_used: float  # seconds since the epoch


def parse_size(text: str) -> int:
    """Bytes from "500M", "20G", "1.5 GiB", "1048576"; ValueError with the accepted forms."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.I)
    if match is None:
        raise ValueError(f"Cannot read the size {text!r}: write e.g. 500M, 20G or 1.5GiB.")
    number, unit = float(match.group(1)), match.group(2).upper()
    return int(number * _UNITS[unit])


def format_size(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover - the loop returns


def store_entries(root) -> list[StoreEntry]:
    """Every entry of the store at ``root``, least recently used first."""
    root = Path(root).expanduser()
    entries = []
    # Layout: ROOT/<model hash>/<slice digest>/<settings hash>/zarr.json
    for marker in root.glob("*/*/*/zarr.json") if root.is_dir() else []:
        folder = marker.parent
        try:
            last_used = marker.stat().st_mtime
        except OSError:  # deleted meanwhile
            continue
        entries.append(StoreEntry(folder, _model_of(marker), _folder_bytes(folder), last_used))
    return sorted(entries, key=lambda entry: entry.last_used)


def prune_store(root, max_bytes: int) -> tuple[list[StoreEntry], int]:
    """Delete the least recently used entries until the store holds at most ``max_bytes``.

    Returns (deleted entries, bytes now in the store).  Empty parent folders go too.
    """
    if max_bytes < 0:
        raise ValueError("The size to prune to must be 0 or more bytes.")
    entries = store_entries(root)
    total = sum(entry.nbytes for entry in entries)
    deleted = []
    for entry in entries:
        if total <= max_bytes:
            break
        shutil.rmtree(entry.path, ignore_errors=True)
        _remove_empty_parents(entry.path, Path(root).expanduser())
        total -= entry.nbytes
        deleted.append(entry)
    return deleted, total


def _model_of(marker: Path) -> str:
    try:
        return str(json.loads(marker.read_text())["attributes"]["signature"]["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            pass
    return total


def _remove_empty_parents(path: Path, root: Path) -> None:
    for parent in (path.parent, path.parent.parent):
        if parent == root:
            return
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            return
