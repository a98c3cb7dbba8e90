"""Weights: where they live, how they are fetched, read safely, identified and loaded.

* :mod:`.cache`: the cache folder, downloads with sha256 checks, missing-weights errors;
* :mod:`.ledger`: sha256 and size recorded at the first download where none is published;
* :mod:`.loading`: :func:`load_model` (build the network of a spec, load strictly);
* :mod:`.readers`: one safe reader per ``ModelSpec.checkpoint_format`` (``FORMATS``), with
  :mod:`.safe_load` (weights-only ``torch.load``), :mod:`.ultralytics_reader` (restricted
  unpickler) and :mod:`.efficient_sam_file`;
* when a file is refused or does not fit: :mod:`.file_inspection` (reading it without
  unpickling), :mod:`.identify` (which registry model it belongs to), :mod:`.refusals` (the
  message); :mod:`.file_check` tells it fast when a file is chosen, before any load;
* :mod:`.content_identity`: what the weights *are* (a sha256 of their content), for
  embedding keys.
"""
from __future__ import annotations

from .cache import (
    CACHE_ENV, cache_dir, cache_root, cached_path, fetch_checkpoint, reword_remedy, sha256_of,
    verification, weights_present,
)
from .ledger import read_ledger
from .content_identity import model_digest
from .file_check import FileVerdict, RefusedFile, check_checkpoint, refuse_wrong_file
from .identify import describe_checkpoint, guess_model, matching_models
from .loading import default_device, load_model
from .readers import read_checkpoint

__all__ = ["CACHE_ENV", "FileVerdict", "RefusedFile", "cache_dir", "cache_root", "cached_path",
           "check_checkpoint", "read_ledger", "refuse_wrong_file", "verification",
           "default_device", "describe_checkpoint",
           "fetch_checkpoint", "guess_model", "load_model", "matching_models", "model_digest",
           "read_checkpoint", "reword_remedy", "sha256_of", "weights_present"]
