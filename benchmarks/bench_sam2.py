"""SAM 2.1 on the CPU: image encoder and video propagation, ms per frame; peak RSS of a
long propagation.

    PYTHONPATH=src python benchmarks/bench_sam2.py [--models t s] [--runs 3] [--threads 2]
        [--frames 10] [--size 512] [--rss-frames 100] [--json out.json]

Weights are synthesized (seeded, shaped like the official ones; speed does not depend on
their values); float32.  Per model:

* ``encoder_ms``: the 1024 x 1024 image encoder (``Sam2.encode``), cold first call, then
  min / median of ``--runs``;
* ``propagation_ms``: ``VideoPredictor.propagate_in_video`` per frame on a (frames, size,
  size) clip with one object clicked on frame 0 -- median over all tracked frames and over
  the frames with a full memory (7 memories: frame 7 on), which include one encoder run each.

``--rss-frames N`` (hiera_t only) then tracks one object through N frames of size x size
uint16 and prints the process's resident memory every 10 frames and its peak during the
propagation (VmHWM reset after loading the model): it must stay flat as N grows (features of 2 frames kept, memories beyond
32 frames spilled to a temporary folder).  Prints the load average beside every figure:
on a shared machine timings are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import numpy as np
import torch

from bench_tiny_vit import synthesize_

NAMES = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}


def load(name: str):
    """A registered SAM 2.1 with synthesized weights, through ``load_model`` (strict)."""
    from napari_segany.engine.weights import load_model
    from napari_segany.models.registry import get_spec

    model = get_spec(name).build()
    synthesize_(model)
    return load_model(name, checkpoint={"model": model.state_dict()}, device="cpu")


def clip(frames: int, size: int, dtype=np.uint8) -> np.ndarray:
    """A textured background with a bright disk moving 4 px per frame: (frames, size, size)."""
    rng = np.random.default_rng(100)
    yy, xx = np.mgrid[:size, :size]
    background = 60 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    out = np.empty((frames, size, size), dtype)
    top = np.iinfo(dtype).max
    for t in range(frames):
        cy, cx = size // 3 + 4 * t, size // 3 + 2 * t
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 10) ** 2
        frame = background + rng.normal(0, 8, background.shape) + 150 * disk
        out[t] = np.clip(frame * top / 255, 0, top).astype(dtype)
    return out


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def time_encoder(model, runs: int) -> dict:
    x = torch.randn(1, 3, model.image_size, model.image_size)
    walls = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.encode(x)
        cold = time.perf_counter() - t0
        for _ in range(runs):
            t0 = time.perf_counter()
            model.encode(x)
            walls.append(time.perf_counter() - t0)
    return {"cold_ms": 1e3 * cold, "min_ms": 1e3 * min(walls),
            "median_ms": 1e3 * statistics.median(walls), "load": load_avg()}


def time_propagation(model, frames: int, size: int) -> dict:
    from napari_segany.engine.video import VideoPredictor

    predictor = VideoPredictor(model)
    state = predictor.init_state(clip(frames, size))
    c = size // 3
    predictor.add_new_points_or_box(state, 0, 1, points=[[c, c]], labels=[1])
    walls, t0 = {}, time.perf_counter()
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        walls[frame_idx] = time.perf_counter() - t0
        t0 = time.perf_counter()
    tracked = [1e3 * w for t, w in walls.items() if t > 0]
    full = [1e3 * w for t, w in walls.items() if t >= model.num_maskmem]
    return {"frames": frames, "size": size, "median_ms": statistics.median(tracked),
            "full_memory_median_ms": statistics.median(full) if full else None,
            "load": load_avg()}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM), so the peak excludes model loading."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """VmHWM (peak RSS since the last reset) in MB, else the process's ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            line = next(li for li in fh if li.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(model, frames: int, size: int) -> dict:
    from napari_segany.engine.video import VideoPredictor

    stack = clip(frames, size, np.uint16)
    before, process_peak = rss_mb(), peak_mb()
    reset = reset_peak()
    predictor = VideoPredictor(model)
    state = predictor.init_state(stack)
    c = size // 3
    predictor.add_new_points_or_box(state, 0, 1, points=[[c, c]], labels=[1])
    samples = {}
    t0 = time.perf_counter()
    for frame_idx, _, _ in predictor.propagate_in_video(state):
        if (frame_idx + 1) % 10 == 0:
            samples[frame_idx + 1] = round(rss_mb())
            print(f"  frame {frame_idx + 1}: RSS {samples[frame_idx + 1]} MB (load {load_avg()})",
                  flush=True)
    return {"frames": frames, "size": size, "rss_before_mb": round(before),
            "rss_every_10_frames_mb": samples,
            "peak_rss_mb": round(peak_mb()), "peak_excludes_loading": reset,
            "peak_rss_while_loading_mb": round(process_peak),
            "spilled_frames": state.bank.spilled_frames(),
            "s_per_frame": (time.perf_counter() - t0) / frames, "load": load_avg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["t", "s"], choices=list(NAMES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rss-frames", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "torch": torch.__version__}
    for key in args.models:
        name = NAMES[key]
        model = load(name)
        row = {"encoder": time_encoder(model, args.runs)}
        print(f"{name}: encoder {row['encoder']}", flush=True)
        if args.frames > 1:
            row["propagation"] = time_propagation(model, args.frames, args.size)
            print(f"{name}: propagation {row['propagation']}", flush=True)
        results[name] = row
        if key == "t" and args.rss_frames:
            results["rss"] = peak_rss(model, args.rss_frames, args.size)
            print(f"{name}: peak RSS {results['rss']}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
