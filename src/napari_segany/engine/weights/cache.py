"""Where weights live and how they are fetched.

``load_model(name, checkpoint=None)`` (:mod:`.loading`) finds the weights in this order:

1. ``checkpoint`` given: a path to the official file, or a state dict in the official key layout;
2. the cache folder (``$NAPARI_SEGANY_CACHE`` or the platform cache dir, e.g.
   ``~/.cache/napari-segany/weights`` on Linux) holding the official file name;
3. a download of the official URL with pooch (sha256-verified where a digest is published,
   with a progress bar).  Offline, an error names the URL, the file and the folder to put it in.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ...models.registry import ModelSpec, get_spec
from ..errors import CheckpointError, WeightsNotFoundError

CACHE_ENV = "NAPARI_SEGANY_CACHE"
logger = logging.getLogger("napari_segany")


def cache_dir() -> Path:
    """The folder holding downloaded weights (created on demand)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-segany")) / "weights"


def cached_path(name: str | ModelSpec) -> Path:
    """Where the official file of a model is (or would be) in the cache folder."""
    return cache_dir() / get_spec(name).file_name


def weights_present(name: str | ModelSpec) -> bool:
    """True when the official file is already in the cache folder."""
    return cached_path(name).is_file()


def fetch_checkpoint(name: str | ModelSpec, progress: bool = True) -> Path:
    """Path of the official file in the cache, downloading it if needed."""
    spec = get_spec(name)
    target = cached_path(spec)
    if target.is_file():
        _verify_cached(spec, target)
        return target
    if not spec.urls:
        raise _missing_error(spec, target, reason="it has no public download URL")
    return _download(spec, target, progress)


def _download(spec: ModelSpec, target: Path, progress: bool) -> Path:
    import pooch

    target.parent.mkdir(parents=True, exist_ok=True)
    known_hash = f"sha256:{spec.sha256}" if spec.sha256 else None
    errors = []
    for url in spec.urls:
        try:
            fetched = pooch.retrieve(
                url, known_hash=known_hash, fname=spec.file_name, path=target.parent,
                progressbar=progress,
            )
        except ValueError as exc:  # pooch: hash mismatch
            raise CheckpointError(
                f"The download of {spec.file_name} from {url} does not match the published "
                f"sha256 {spec.sha256}; it was deleted. Try again later. ({exc})"
            ) from None
        except Exception as exc:  # network errors come in many types (requests, OSError...)
            errors.append(f"{url}: {type(exc).__name__}")
            continue
        return Path(fetched)  # a .zip release (EfficientSAM ViT-S) is read in place by its reader
    raise _missing_error(spec, target, reason="; ".join(errors))


def _missing_error(spec: ModelSpec, target: Path, reason: str) -> WeightsNotFoundError:
    """The error for weights that are nowhere.  Its message ends with how to give the file
    from Python; ``error.remedy`` is that exact phrase, so that a front end can put its own
    words in its place (the CLI: ``--checkpoint PATH``; the widget: its file field)."""
    source = f"Download {spec.urls[0]}" if spec.urls else (spec.download_hint or "Get the official file")
    remedy = f"pass checkpoint='/path/to/{spec.file_name}'"
    error = WeightsNotFoundError(
        f"The weights of {spec.name} are not available ({reason}). {source} and save it as "
        f"{target} (folder {target.parent}; set ${CACHE_ENV} to use another folder), or {remedy}."
    )
    error.remedy = remedy
    error.file_name = spec.file_name
    return error


def reword_remedy(error: Exception, remedy: str) -> Exception:
    """``error`` with its Python remedy ("pass checkpoint='...'") replaced by ``remedy``
    (e.g. "pass --checkpoint /path/to/mobile_sam.pt"); other errors come back unchanged."""
    old = getattr(error, "remedy", None)
    if not old or old not in str(error):
        return error
    reworded = WeightsNotFoundError(str(error).replace(old, remedy))
    reworded.remedy, reworded.file_name = remedy, getattr(error, "file_name", "")
    return reworded


def _verify_cached(spec: ModelSpec, path: Path) -> None:
    """Check a cached file's sha256 once; remember the result beside it (keyed on size+mtime)."""
    if not spec.sha256:
        return
    stat = path.stat()
    stamp = path.with_name(path.name + ".sha256-ok")
    key = f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == key:
        return
    if sha256_of(path) != spec.sha256:
        raise CheckpointError(
            f"{path} does not match the published sha256 of {spec.file_name}: it is corrupt or "
            "another file. Delete it; it will be downloaded again."
        )
    try:
        stamp.write_text(key)
    except OSError:  # a read-only cache still works, it just re-hashes next time
        pass


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


