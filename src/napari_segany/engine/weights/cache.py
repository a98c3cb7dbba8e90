"""Where weights live and how they are fetched.

``load_model(name, checkpoint=None)`` (:mod:`.loading`) finds the weights in this order:

1. ``checkpoint`` given: a path to the official file, or a state dict in the official key layout;
2. the weights folder of the cache (``$NAPARI_SEGANY_CACHE/weights``, else the platform cache
   dir, e.g. ``~/.cache/napari-segany/weights`` on Linux) holding the official file name; files
   that an older version put straight into ``$NAPARI_SEGANY_CACHE`` are found there too;
3. a download of the official URL with pooch, with a progress bar.  Offline, an error names the
   URL, the file and the folder to put it in.

Every cached file is checked before use: against the published sha256 where there is one,
else against the sha256 and size recorded when it first arrived (:mod:`.ledger`).

The cache root holds ``weights/`` and ``embeddings/`` (the embedding store, see
:func:`napari_segany.engine.embeddings.store.default_store_dir`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import torch

from ...models.registry import ModelSpec, get_spec
from ..errors import CheckpointError, WeightsNotFoundError
from . import ledger
from .ledger import sha256_of  # noqa: F401  (re-exported: part of this module's API)

CACHE_ENV = "NAPARI_SEGANY_CACHE"
logger = logging.getLogger("napari_segany")


def cache_root() -> Path:
    """``$NAPARI_SEGANY_CACHE``, else the platform's user cache folder of napari-segany."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-segany"))


def cache_dir() -> Path:
    """The folder holding downloaded weights: ``<cache root>/weights`` (created on demand)."""
    return cache_root() / "weights"


def cached_path(name: str | ModelSpec) -> Path:
    """Where the official file of a model is in the cache (or would be, once downloaded).

    A file left by an older version straight in ``$NAPARI_SEGANY_CACHE`` is used where it is.
    """
    file_name = get_spec(name).file_name
    target = cache_dir() / file_name
    legacy = cache_root() / file_name
    if not target.is_file() and legacy.is_file():
        return legacy
    return target


def weights_present(name: str | ModelSpec) -> bool:
    """True when the official file is already in the cache folder."""
    return cached_path(name).is_file()


def verification(name: str | ModelSpec) -> str:
    """How a model's file is checked: ``published`` (the authors' sha256), ``recorded`` (its
    sha256 and size recorded at its first download) or ``unrecorded`` (not downloaded yet;
    recorded when it arrives)."""
    spec = get_spec(name)
    if spec.sha256:
        return ledger.PUBLISHED
    path = cached_path(spec)
    return ledger.RECORDED if path.name in ledger.read_ledger(path.parent) else ledger.UNRECORDED


def fetch_checkpoint(name: str | ModelSpec, progress: bool = True) -> Path:
    """Path of the official file in the cache, downloading it if needed."""
    spec = get_spec(name)
    target = cached_path(spec)
    if target.is_file():
        ledger.verify_or_record(target, spec.sha256, source="found in the cache folder")
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
        fetched = Path(fetched)  # a .zip release (EfficientSAM ViT-S) is read in place by its reader
        if not spec.sha256:  # pooch checked a published digest; else trust on first download
            ledger.record_file(fetched, source=url)
        return fetched
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
