"""The region upsampling of the shown mask (engine/interactive/mask_region.py) gives the same
mask as upsampling everything: bit for bit, so equality is exact (no tolerance)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_segany.engine.interactive.mask_region import region_mask
from napari_segany.engine.interactive.masks import crop_to_bbox
from napari_segany.engine.interactive.transforms import (
    AntialiasStretchTransform, LongestSideTransform, StretchTransform)

TRANSFORMS = {"sam_longest_side": LongestSideTransform, "efficient_sam_bicubic": StretchTransform,
              "sam2_stretch": AntialiasStretchTransform}
#: dyadic sizes take the region path; the others check that the fallback is taken
SIZES = [(1024, 1024), (1024, 768), (512, 512), (2048, 1024), (128, 4096), (64, 64),
         (1000, 800), (300, 451)]


def _transform(kind: str):
    return TRANSFORMS[kind](1024, [0.0] * 3, [1.0] * 3)


def _full(transform, low: torch.Tensor, original_size):
    input_size = transform.input_size(original_size)
    logits = transform.postprocess_masks(low[None, None].float(), input_size, original_size)
    return crop_to_bbox((logits[0, 0] > 0).numpy())


def _assert_same(transform, low: torch.Tensor, original_size) -> bool:
    """True when the region path was taken (and agreed with the full path)."""
    steps = transform.upsample_steps(transform.input_size(original_size), original_size)
    got = region_mask(low, steps, 0.0) if steps is not None else None
    if got is None:
        return False
    bbox, crop = _full(transform, low, original_size)
    assert got[0] == bbox
    np.testing.assert_array_equal(got[1], crop)
    return True


def _random_logits(rng, kind: int) -> torch.Tensor:
    """Smooth blobs, noise, a lone box of positives, a single barely positive cell."""
    if kind == 0:
        coarse = torch.from_numpy(rng.normal(size=(1, 1, 16, 16)).astype(np.float32))
        return F.interpolate(coarse, (256, 256), mode="bicubic")[0, 0] * 10 + rng.uniform(-25, 5)
    if kind == 1:
        return torch.from_numpy(rng.normal(size=(256, 256)).astype(np.float32)) - rng.uniform(0, 4)
    low = torch.full((256, 256), -8.0) if kind == 2 else -torch.rand(256, 256) * 20
    r, c = rng.integers(0, 256, 2)
    if kind == 2:
        low[r:r + rng.integers(1, 30), c:c + rng.integers(1, 30)] = float(rng.uniform(0.01, 9))
    else:
        low[r, c] = 1e-3
    return low


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
def test_random_logits_same_mask(kind):
    transform, rng, used = _transform(kind), np.random.default_rng(0), 0
    for size in SIZES:
        for trial in range(8):
            used += _assert_same(transform, _random_logits(rng, trial % 4), size)
    assert used >= 2 * 8  # the dyadic sizes went through the region path


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
def test_edges_and_empty(kind):
    transform = _transform(kind)
    for r, c in [(0, 0), (255, 255), (0, 255), (128, 0)]:
        low = torch.full((256, 256), -3.0)
        low[r, c] = 2.0
        assert _assert_same(transform, low, (1024, 1024))
    assert region_mask(torch.full((256, 256), -1.0), ("bilinear", (1024, 1024), (1024, 1024)),
                       0.0)[0] is None


@pytest.mark.parity
@pytest.mark.parametrize("case", ["mobile_sam", "efficient_sam_vitt", "sam2.1_hiera_t"])
def test_parity_logits_same_mask(parity_dir, case):
    """The official decoders' low-res logits of the parity images, at several image sizes."""
    from napari_segany.models.registry import get_spec
    from napari_segany.engine.interactive.transforms import transform_for

    npz = np.load(parity_dir / case / "case.npz")
    transform = transform_for(get_spec(case))
    used = 0
    for key in (k for k in npz.files if k.endswith(("__low_res_logits", "__lowres_logits"))):
        for low in npz[key].reshape(-1, *npz[key].shape[-2:])[:4]:
            for size in [(1024, 1024), (512, 512), (2048, 2048), (300, 451)]:
                used += _assert_same(transform, torch.from_numpy(low.astype(np.float32)), size)
    assert used > 0
