"""Synthetic ground truth for the workflow tests: spheres cut into per-slice labels with
shuffled ids, and a movie of moving disks where one divides."""
from __future__ import annotations

import numpy as np


def spheres(shape, centers, radii) -> np.ndarray:
    """(Z, Y, X) int32 labels: sphere i (id i + 1) at centers[i] (z, y, x) with radii[i]."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, np.int32)
    for i, ((cz, cy, cx), r) in enumerate(zip(centers, radii)):
        labels[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r] = i + 1
    return labels


def shuffle_per_slice(labels: np.ndarray, seed: int = 0, max_id: int = 5000) -> np.ndarray:
    """The same objects with independent random ids on every slice (as everything mode gives)."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for z in range(labels.shape[0]):
        lut = np.r_[0, rng.choice(np.arange(1, max_id), size=int(labels.max()), replace=False)]
        out[z] = lut[labels[z]]
    return out


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b split the foreground into the same objects (ids may differ)."""
    fg = (a > 0) | (b > 0)
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[fg], b[fg]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def disk(plane: np.ndarray, center, radius: float, value: int) -> None:
    y, x = np.ogrid[: plane.shape[0], : plane.shape[1]]
    plane[(y - center[0]) ** 2 + (x - center[1]) ** 2 <= radius * radius] = value


#: frame at which the dividing cell's daughters appear
DIVISION_FRAME = 5
N_FRAMES = 10


def dividing_movie(shape=(80, 96), seed: int = 1):
    """(T, Y, X) per-frame labels with shuffled ids, and the truth.

    Cell A moves right by 2 px per frame; cell B stays, then divides at DIVISION_FRAME into
    two daughters that drift apart; cell C moves down and leaves at frame 8 (no mask then).
    Returns ``(labels, truth)`` with ``truth[name] = {t: (y, x)}`` of the disk centres."""
    truth = {"A": {}, "B": {}, "B1": {}, "B2": {}, "C": {}}
    movie = np.zeros((N_FRAMES, *shape), np.int32)
    for t in range(N_FRAMES):
        truth["A"][t] = (20, 12 + 2 * t)
        if t < DIVISION_FRAME:
            truth["B"][t] = (55, 45)
        else:
            drift = t - DIVISION_FRAME
            truth["B1"][t] = (55, 40 - drift)
            truth["B2"][t] = (55, 51 + drift)
        if t < 8:
            truth["C"][t] = (10 + 3 * t, 80)
    radius = {"A": 8, "B": 9, "B1": 6, "B2": 6, "C": 6}
    ids = {name: k + 1 for k, name in enumerate(truth)}
    for name, centres in truth.items():
        for t, centre in centres.items():
            disk(movie[t], centre, radius[name], ids[name])
    return shuffle_per_slice(movie, seed), truth
