"""Shared pieces of the SAM 2.1 parity tests (../shared/parity/sam2.1_hiera_t/README.md).

The weights go through our whole loader: synthesized state dict -> the official on-disk
layout ``torch.save({'model': sd})`` -> ``load_model`` (safe reader, key mapper, strict
load).  Tolerances: the README's "Suggested checks" (quoted where used).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import napari_segany as nsa

CASE = "sam2.1_hiera_t"


def load_case_model(synth_state_dict, tmp_dir: Path) -> torch.nn.Module:
    """Hiera-T with the case's seed-0 weights, read back from an official-layout file."""
    path = tmp_dir / "sam2.1_hiera_tiny.pt"
    torch.save({"model": synth_state_dict(CASE)}, path)
    return nsa.load_model(CASE, checkpoint=path, device="cpu")


def load_npz(parity_dir: Path) -> dict:
    with np.load(parity_dir / CASE / "case.npz") as npz:
        return {k: npz[k] for k in npz.files}


def max_abs(ours, expected) -> float:
    return float(np.abs(np.asarray(ours, np.float64) - np.asarray(expected, np.float64)).max())
