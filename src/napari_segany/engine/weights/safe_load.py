"""``torch.load`` that never executes pickled code.

Every load is ``weights_only=True``: torch's unpickler resolves tensors and plain containers
only.  Numpy number scalars (:data:`BENIGN_GLOBALS`), which training loops leave in
checkpoints, are allowed for the one load that needs them; anything else is refused by
name, with a message saying what the file is (:mod:`.refusals`).
"""
from __future__ import annotations

import os
import pickle
import threading
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from ..errors import CheckpointError
from .file_inspection import rewind, unsafe_globals
from .refusals import BENIGN_GLOBALS, refusal_message, unreadable_message

# the dtypes a pickled numpy scalar may carry: numbers only
_NUMERIC_DTYPES = ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "?")
# torch's allowlist is process-wide: two loads must not add and remove entries at once
_ALLOWLIST_LOCK = threading.Lock()
# whether zip-format files are mapped (this thread's loads only; see read_into_memory)
_MAPPED = ContextVar("napari_segany_mapped_loads", default=True)


def safe_torch_load(source, name=None) -> Any:
    """``torch.load(weights_only=True)`` with errors that say what the file is and what to do.

    ``source`` is a path or a binary file object (``name`` then names it in messages).
    Numpy number scalars (:data:`BENIGN_GLOBALS`) are allowed; any other pickled object is
    refused by name, and nothing in the file is executed.
    """
    name = name or source
    allowed: set[str] = set()
    for _ in range(len(BENIGN_GLOBALS) + 1):  # a legacy file names one refused global at a time
        try:
            with _allowlisted(allowed):
                return _weights_only_load(source)
        except pickle.UnpicklingError as exc:
            refused = unsafe_globals(source, exc)
            new = set(refused) - allowed
            if not new or not new <= set(BENIGN_GLOBALS):
                raise CheckpointError(refusal_message(source, name, refused, exc)) from None
            allowed |= new
        except Exception as exc:  # torch raises RuntimeError, KeyError, EOFError... on bad bytes
            raise CheckpointError(unreadable_message(source, name, exc)) from None
    raise CheckpointError(f"Refused to load {name}: too many pickled objects. Nothing was executed.")


@contextmanager
def read_into_memory():
    """Loads in this block (this thread only) read files into memory instead of mapping
    them: for tensors a network keeps.  A network holding mapped pages would crash (SIGBUS)
    if its file were truncated or copied over while it runs."""
    token = _MAPPED.set(False)
    try:
        yield
    finally:
        _MAPPED.reset(token)


def _weights_only_load(source) -> Any:
    rewind(source)
    # a zip-format file on disk is mapped, not read, unless the tensors are to be kept
    # (read_into_memory): identifying a file then touches none of its tensor pages, and a
    # copying load holds one copy of the weights, the page cache's
    mmap = (_MAPPED.get() and isinstance(source, (str, os.PathLike))
            and zipfile.is_zipfile(source))
    return torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)


@contextmanager
def _allowlisted(names: set[str]):
    """Allow ``names`` for this load only, leaving torch's process-wide allowlist as it was
    (entries the application added itself are never removed)."""
    if not names:
        yield
        return
    with _ALLOWLIST_LOCK:
        present = {_global_name(g) for g in torch.serialization.get_safe_globals()}
        ours = [g for g in _benign_objects(sorted(names)) if _global_name(g) not in present]
        with torch.serialization.safe_globals(ours):
            yield


def _benign_objects(names) -> list:
    """``safe_globals`` entries for the allowlisted names (numpy only imported when needed)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    objects: list = []
    for global_name in names:
        if global_name.endswith(".scalar"):
            objects.append((scalar, global_name))
        elif global_name == "numpy.dtype":
            objects.append((np.dtype, global_name))
    # a scalar carries its dtype, whose pickled state is set on the dtype's class (BUILD)
    objects += [type(np.dtype(c)) for c in _NUMERIC_DTYPES]
    return objects


def _global_name(entry) -> str:
    """The dotted name of a ``safe_globals`` entry: an object, or ``(object, name)``."""
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"
