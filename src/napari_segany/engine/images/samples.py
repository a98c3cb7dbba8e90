"""Small microscopy-like images that exist offline (for the sample menu, tests and demos).

scikit-image bundles one real microscopy image, ``data.cell()`` (660 x 550 phase contrast);
the z-stack and the time series are generated from it or from blobs, deterministically.
"""
from __future__ import annotations

import numpy as np


def cell_2d() -> np.ndarray:
    """(660, 550) uint8 phase-contrast image of a cell (scikit-image ``data.cell``)."""
    from skimage import data

    return data.cell()


def nuclei_zstack(shape=(24, 256, 256), seed: int = 0) -> np.ndarray:
    """(Z, Y, X) uint16 z-stack of blurred 3D blobs ("nuclei") with shot noise and background."""
    from skimage import data, filters, transform

    # Blobs on a coarse 128^3 grid, then resampled: 8x cheaper than generating at full size.
    blobs = data.binary_blobs(length=128, n_dim=3, volume_fraction=0.12,
                              blob_size_fraction=0.12, rng=seed).astype(np.float32)
    volume = transform.resize(blobs[: max(2, shape[0] * 128 // shape[1])], shape, order=1)
    volume = filters.gaussian(volume, sigma=(1, 2, 2))
    rng = np.random.default_rng(seed)
    return rng.poisson(200 + 1800 * volume).astype(np.uint16)


def cell_timeseries(n_frames: int = 12, crop=(320, 320), seed: int = 0) -> np.ndarray:
    """(T, Y, X) uint8 time series: a crop of ``data.cell`` drifting and slowly deforming."""
    from skimage import transform

    image = cell_2d().astype(np.float32) / 255
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_frames):
        tf = transform.AffineTransform(
            translation=(-100 - 3.0 * t, -150 - 2.0 * t), rotation=0.01 * t,
            scale=(1 + 0.004 * t, 1 - 0.003 * t),
        )
        warped = transform.warp(image, tf.inverse, output_shape=crop, mode="reflect")
        noisy = warped + rng.normal(0, 0.01, crop)
        frames.append(np.clip(noisy * 255, 0, 255).astype(np.uint8))
    return np.stack(frames)
