"""What a model's weights *are*, by content: the sha256 of its checkpoint.

Embedding keys (and the on-disk store) name the weights by content, never by path or mtime,
so that a moved or copied checkpoint keeps its stored embeddings and a replaced file under
the same name never reuses them.

* a checkpoint file: the sha256 of its bytes, the value the registry publishes for official
  files.  Hashing a 2.5 GB ViT-H takes about 2 s, so it happens once per file: the result is
  remembered in memory and, for files over 64 MiB, in ``digests.json`` of the weights cache
  folder, keyed on the file's resolved path, size and mtime (the stamp trick of
  ``weights._verify_cached``); an official file already verified by the weights cache costs
  nothing;
* weights given in memory (a state dict, ``checkpoint_path`` not a file): a sha256 over the
  model's tensors (names, dtypes, shapes, bytes), computed once per model object;
* an object without tensors (test stand-ins): its ``id``, i.e. only this very object.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)
MEMO_FILE = "digests.json"
DISK_MEMO_MIN_BYTES = 64 << 20  # smaller files are hashed each session (< 40 ms)
_ATTR = "_segany_weights_digest"  # the digest remembered on a model object
_memo: dict[tuple, str] = {}  # (resolved path, size, mtime_ns) -> sha256
_lock = threading.Lock()


def model_digest(model) -> str:
    """``"sha256:<hex>"`` of the model's checkpoint file or tensors; ``"id<n>"`` as a last resort."""
    source = str(getattr(model, "checkpoint_path", "") or "")
    if source and Path(source).is_file():
        # Memoised per (path, size, mtime) in file_digest: a stat per call, no hashing.
        return "sha256:" + file_digest(source, getattr(model, "spec", None))
    known = getattr(model, _ATTR, None)
    if known is not None and known[0] == source:
        return known[1]
    if not callable(getattr(model, "state_dict", None)):
        return f"id{id(model)}"  # no weights to hash: valid for this object only
    digest = "sha256:" + tensors_digest(model.state_dict())
    try:
        setattr(model, _ATTR, (source, digest))  # once per model object and source
    except AttributeError:  # objects with __slots__: recompute next time
        pass
    return digest


def file_digest(path, spec=None) -> str:
    """sha256 hex of a file, computed once per (path, size, mtime) and remembered on disk."""
    path = Path(path).resolve()
    stat = path.stat()
    stamp = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if stamp in _memo:
            return _memo[stamp]
    small = stat.st_size < DISK_MEMO_MIN_BYTES  # hashing is cheaper than remembering
    digest = _verified_official(path, spec, stat) or (None if small else _from_disk_memo(stamp))
    if digest is None:
        from .cache import sha256_of

        log.info("computing the sha256 of %s (once per file)", path)
        digest = sha256_of(path)
        if not small:
            _save_disk_memo(stamp, digest)
    with _lock:
        _memo[stamp] = digest
    return digest


def tensors_digest(state_dict) -> str:
    """sha256 hex over a state dict's tensors in name order (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if not isinstance(value, torch.Tensor):
            continue
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw 16-bit words
            tensor = tensor.view(torch.int16)
        digest.update(memoryview(np.ascontiguousarray(tensor.numpy())).cast("B"))
    return digest.hexdigest()


def _verified_official(path: Path, spec, stat) -> str | None:
    """The published sha256 when the weights cache already verified this very file."""
    sha = getattr(spec, "sha256", None)
    if not sha:
        return None
    stamp = path.with_name(path.name + ".sha256-ok")  # written by weights._verify_cached
    try:
        ok = stamp.read_text() == f"{sha} {stat.st_size} {stat.st_mtime_ns}"
    except OSError:
        return None
    return sha if ok else None


def _memo_path() -> Path:
    from .cache import cache_dir

    return cache_dir() / MEMO_FILE


def _from_disk_memo(stamp: tuple) -> str | None:
    try:
        entries = json.loads(_memo_path().read_text())
        entry = entries.get(stamp[0])
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(entry, dict) and [entry.get("size"), entry.get("mtime_ns")] == list(stamp[1:]):
        return entry.get("sha256")
    return None


def _save_disk_memo(stamp: tuple, digest: str) -> None:
    """Add one entry to digests.json atomically; a read-only cache just re-hashes next time."""
    path = _memo_path()
    with _lock:
        try:
            entries = json.loads(path.read_text()) if path.is_file() else {}
            if not isinstance(entries, dict):
                entries = {}
        except (OSError, ValueError):
            entries = {}
        entries = {k: v for k, v in entries.items() if Path(k).is_file()}  # forget deleted files
        entries[stamp[0]] = {"size": stamp[1], "mtime_ns": stamp[2], "sha256": digest}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".digests-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(entries, fh, indent=0)
            os.replace(tmp, path)
        except OSError as exc:
            log.info("could not remember the digest in %s: %s", path, exc)
