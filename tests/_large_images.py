"""A synthetic field larger than the tiny test models' 256-px input, for the tiling tests."""
from __future__ import annotations

import numpy as np


def big_cells(shape=(440, 440), seed: int = 0) -> np.ndarray:
    """uint8 blobs (radius 24) on a noisy background, spread over several 256-px tiles."""
    rng = np.random.default_rng(seed)
    image = rng.normal(60, 8, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for cy in range(40, shape[0], 110):
        for cx in range(50, shape[1], 120):
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < 24 ** 2] += 120
    return np.clip(image, 0, 255).astype(np.uint8)
