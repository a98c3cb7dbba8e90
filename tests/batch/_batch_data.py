"""Small inputs and settings shared by the batch tests (the tiny SAM of tests/_everything.py)."""
from __future__ import annotations

import numpy as np
import tifffile
import torch
from _everything import TINY_SAM, cells_image, random_state_dict
from PIL import Image

#: Random weights score low and overlap: keep every candidate; few prompts keep runs short.
PARAMS = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
CLI_PARAMS = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh", "0"]


def write_checkpoint(folder):
    path = folder / "tiny_sam.pt"
    torch.save(random_state_dict(TINY_SAM), path)
    return path


def write_inputs(folder, broken: bool = False):
    """A 2D uint16 TIFF, a (3, H, W) float32 NPY stack, an 8-bit PNG (and a broken TIFF)."""
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "field.tif", (cells_image(seed=1) * 10).astype(np.uint16))
    np.save(folder / "stack.npy", np.stack([cells_image(seed=s) for s in range(3)]))
    Image.fromarray(np.clip(cells_image(seed=4), 0, 255).astype(np.uint8)).save(folder / "cells.png")
    if broken:
        (folder / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    return folder


def model_options(checkpoint) -> dict:
    return dict(model=TINY_SAM, checkpoint=checkpoint, device="cpu", **PARAMS)


def cli_model(checkpoint) -> list[str]:
    return ["--model", "tiny_sam", "--checkpoint", str(checkpoint), "--device", "cpu", *CLI_PARAMS]


def labels_of(out, stem: str, level: int = 0) -> np.ndarray:
    import zarr

    return zarr.open_group(str(out / f"{stem}.ome.zarr"), mode="r")[f"labels/segany/{level}"][...]
