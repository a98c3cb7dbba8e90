"""Linking, tracking and object tables on synthetic data of realistic size.

    python benchmarks/bench_workflows.py [--slices 64] [--frames 100] [--side 512] [--quick]

* ``link_slices`` on a (64, 512, 512) volume of ~400 touching-or-not spheres (radii 5..14),
  cut into per-slice labels with shuffled ids (what everything mode gives);
* ``track_labels`` on a (100, 512, 512) movie of ~250 disks moving 1..3 px per frame, a few
  dividing; then ``write_ctc`` of the result;
* ``object_features`` on one 512 x 512 frame and, per plane, on the whole movie.

Prints a table with the load average (the machine is shared: figures taken while others work
are noisy) and writes benchmarks/results/workflows.json.  Synthetic generation is not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import napari_segany as nsa

RESULTS = Path(__file__).resolve().parent / "results" / "workflows.json"


def spheres_volume(shape, n, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for i in range(n):
        r = rng.uniform(5, 14)
        c = rng.uniform([0, 0, 0], shape)
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        inside = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
        labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = i + 1
    return labels


def shuffled(labels: np.ndarray, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty_like(labels)
    for z in range(labels.shape[0]):
        lut = np.r_[0, rng.permutation(int(labels.max())) + 1].astype(labels.dtype)
        out[z] = lut[labels[z]]
    return out


def disks_movie(frames, side, n, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(20, side - 20, (n, 2))
    vel = rng.uniform(-3, 3, (n, 2))
    radius = rng.uniform(6, 11, n)
    movie = np.zeros((frames, side, side), np.int32)
    y, x = np.ogrid[:side, :side]
    for t in range(frames):
        for i in range(len(pos)):
            cy, cx = pos[i] + t * vel[i]
            r = radius[i]
            y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, side))
            x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, side))
            if y0 >= y1 or x0 >= x1:
                continue
            inside = (y[y0:y1] - cy) ** 2 + (x[:, x0:x1] - cx) ** 2 <= r * r
            movie[t, y0:y1, x0:x1][inside] = i + 1
    return movie


def timed(fn, *args, **kw):
    start = time.perf_counter()
    value = fn(*args, **kw)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="a (16, 256, 256) run")
    args = parser.parse_args()
    if args.quick:
        args.slices, args.frames, args.side = 16, 16, 256
    side = args.side
    rows = []
    volume = shuffled(spheres_volume((args.slices, side, side), int(400 * (side / 512) ** 2)))
    linked, seconds = timed(nsa.link_slices, volume)
    rows.append(("link_slices", volume.shape, seconds, f"{int(linked.max())} objects"))
    movie = shuffled(disks_movie(args.frames, side, int(250 * (side / 512) ** 2)))
    result, seconds = timed(nsa.track_labels, movie)
    rows.append(("track_labels", movie.shape, seconds,
                 f"{len(result.track_ids)} tracks, {len(result.graph)} daughters"))
    with tempfile.TemporaryDirectory() as folder:
        _, seconds = timed(nsa.write_ctc, result, folder)
        rows.append(("write_ctc", movie.shape, seconds, "uncompressed uint16 TIFFs"))
    table, seconds = timed(nsa.object_features, movie[0])
    rows.append(("object_features", movie[0].shape, seconds, f"{len(table['label'])} objects"))
    table, seconds = timed(nsa.object_features, movie)
    rows.append(("object_features", movie.shape, seconds, f"{len(table['label'])} rows (per plane)"))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"{'step':<18}{'shape':<18}{'seconds':>9}  note")
    for name, shape, seconds, note in rows:
        print(f"{name:<18}{str(shape):<18}{seconds:>9.2f}  {note}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"load_average": load, "cores": os.cpu_count(), "rows": [
        {"step": n, "shape": list(s), "seconds": round(t, 3), "note": note} for n, s, t, note in rows
    ]}, indent=1))


if __name__ == "__main__":
    main()
