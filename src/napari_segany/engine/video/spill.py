"""Tensors moved out of RAM into raw files of a private temporary folder, read back exactly.

Used by the memory bank for the per-frame memories of long stacks (about 0.75 MB per frame
and object) beyond the frames it keeps in RAM.  Files hold the raw bytes of a contiguous
tensor (no pickle); the folder is deleted by :meth:`SpillStore.close` or when the store is
garbage collected.
"""
from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch


class SpillStore:
    """key (any hashable) -> tensor, on disk.  ``directory``: where to create the private
    temporary folder (default: the system's temporary folder)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="segany-sam2-", dir=directory)
        self._meta: dict = {}  # key -> (file name, dtype, shape)
        self._names = itertools.count()

    def __len__(self) -> int:
        return len(self._meta)

    def __contains__(self, key) -> bool:
        return key in self._meta

    def put(self, key, tensor: torch.Tensor) -> None:
        """Write ``tensor`` (CPU) under ``key`` (replacing what was there)."""
        name = self._meta[key][0] if key in self._meta else f"{next(self._names)}.raw"
        raw = tensor.detach().contiguous().view(-1).view(torch.uint8).numpy()
        raw.tofile(Path(self._dir.name) / name)
        self._meta[key] = (name, tensor.dtype, tuple(tensor.shape))

    def get(self, key) -> torch.Tensor:
        """The tensor stored under ``key`` (a new CPU tensor, bit-identical)."""
        name, dtype, shape = self._meta[key]
        raw = np.fromfile(Path(self._dir.name) / name, dtype=np.uint8)
        return torch.from_numpy(raw).view(dtype).reshape(shape)

    def drop(self, key) -> None:
        """Forget ``key`` and delete its file (no error when absent)."""
        entry = self._meta.pop(key, None)
        if entry is not None:
            (Path(self._dir.name) / entry[0]).unlink(missing_ok=True)

    def close(self) -> None:
        """Delete every file and the folder."""
        self._meta.clear()
        self._dir.cleanup()
