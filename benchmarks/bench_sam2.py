"""SAM 2.1 on the CPU: image encoder and video propagation, ms per frame; where a tracked
frame's time goes; peak RSS of long propagations.

    PYTHONPATH=src python benchmarks/bench_sam2.py [--models t s] [--runs 3] [--threads 2]
        [--precisions fp32 bf16] [--frames 10] [--size 512] [--profile] [--rss-frames 100 1000]
        [--rss-image-size 1024 512] [--rss-objects 1] [--json out.json]

Weights are synthesized (seeded, shaped like the official ones; speed does not depend on
their values); the encoder's precision per ``--precisions`` (``load_model(...,
precision=)``: "bf16" runs the image encoder's weights in bfloat16, the rest stays float32;
the propagation and RSS rows use the first one).  Every time is given as wall ms and as this process's CPU ms (CPU
time is less disturbed by other work on a shared machine; on an idle machine wall ~ CPU /
threads); the load average is printed beside every figure.  Per model:

* ``encoder``: the 1024 x 1024 image encoder (``Sam2.encode_frame``), cold first call, then
  min / median of ``--runs``;
* ``propagation``: ``VideoPredictor.propagate_in_video`` per frame on a (frames, size, size)
  clip with one object clicked on frame 0 -- medians over all tracked frames and over the
  frames with a full memory (7 memories: frame 7 on), each with one encoder run;
* ``--profile``: one full-memory frame split by part (encoder, memory attention and its self-
  and cross-attentions, mask decoder, memory encoder; CPU s) and torch.profiler's top ops.

``--rss-frames N ...`` (hiera_t) tracks ``--rss-objects`` objects through N frames of
size x size uint16 with the job the GUI runs (``MemorySession``: every object of a label
slice, masks kept as crops), frames made on demand (the stack is not in RAM, so the figures
are the engine's); prints the resident memory every 10 % of the run and its peak (VmHWM
reset after loading the model).  It must stay flat as N grows: features of 2 frames are
kept, memories beyond 32 frames spill to a temporary folder.  ``--rss-image-size`` (one per
N) runs Hiera-T at a smaller model input for long runs (512: ~16x cheaper memory attention);
the memory per frame then shrinks 4x, the flatness is what is measured.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import resource
import statistics
import time

import numpy as np
import torch

from bench_tiny_vit import synthesize_

NAMES = {"t": "sam2.1_hiera_t", "s": "sam2.1_hiera_s", "b+": "sam2.1_hiera_b+", "l": "sam2.1_hiera_l"}


def load(name: str, image_size: int = 1024, precision: str = "fp32"):
    """A registered SAM 2.1 with synthesized weights, through ``load_model`` (strict);
    ``image_size`` < 1024 builds the same weights for a smaller model input."""
    from napari_segany.engine.weights import load_model
    from napari_segany.models.registry import get_spec

    spec = get_spec(name)
    if image_size != spec.input_size:
        spec = dataclasses.replace(spec, builder_kwargs={"image_size": image_size},
                                   input_size=image_size)
    model = spec.build()
    synthesize_(model)
    return load_model(spec, checkpoint={"model": model.state_dict()}, device="cpu",
                      precision=precision)


def disk_frame(t: int, size: int, dtype=np.uint8, rng=None) -> np.ndarray:
    """A textured background with a bright disk moving 4 px per frame (wrapping around)."""
    rng = rng or np.random.default_rng(100 + t)
    yy, xx = np.mgrid[:size, :size]
    background = 60 + 40 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    cy, cx = (size // 3 + 4 * t) % size, (size // 3 + 2 * t) % size
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 10) ** 2
    top = np.iinfo(dtype).max
    frame = background + rng.normal(0, 8, background.shape) + 150 * disk
    return np.clip(frame * top / 255, 0, top).astype(dtype)


def clip(frames: int, size: int, dtype=np.uint8) -> np.ndarray:
    """(frames, size, size) of :func:`disk_frame`."""
    return np.stack([disk_frame(t, size, dtype) for t in range(frames)])


class LazyClip:
    """(frames, size, size) uint16 frames made on demand (nothing of size T in RAM)."""

    def __init__(self, frames: int, size: int) -> None:
        self.shape, self.dtype, self.size = (frames, size, size), np.dtype(np.uint16), size

    def __getitem__(self, where) -> np.ndarray:
        t = where[0] if isinstance(where, tuple) else where  # (t,) from MemorySession
        return disk_frame(int(t), self.size, np.uint16)


def load_avg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return 1e3 * (wall - start[0]), 1e3 * (cpu - start[1])


def time_encoder(model, runs: int) -> dict:
    x = torch.randn(1, 3, model.image_size, model.image_size,
                    generator=torch.Generator().manual_seed(0))
    walls, cpus = [], []
    with torch.inference_mode():
        start = _clock()
        model.encode_frame(x)
        cold = _since(start)[0]
        for _ in range(runs):
            start = _clock()
            model.encode_frame(x)
            wall, cpu = _since(start)
            walls.append(wall)
            cpus.append(cpu)
    return {"cold_ms": cold, "min_ms": min(walls), "median_ms": statistics.median(walls),
            "median_cpu_ms": statistics.median(cpus), "load": load_avg()}


def _tracked_frames(model, frames: int, size: int):
    """(frame index, wall ms, cpu ms) of each frame of a one-object propagation."""
    from napari_segany.engine.video import VideoPredictor

    predictor = VideoPredictor(model)
    state = predictor.init_state(clip(frames, size))
    c = size // 3
    predictor.add_new_points_or_box(state, 0, 1, points=[[c, c]], labels=[1])
    job = predictor.propagate_in_video(state)
    while True:
        start = _clock()
        try:
            frame_idx, _, _ = next(job)
        except StopIteration:
            return
        yield (frame_idx, *_since(start))


def time_propagation(model, frames: int, size: int) -> dict:
    times = list(_tracked_frames(model, frames, size))
    tracked = [(w, c) for t, w, c in times if t > 0]
    full = [(w, c) for t, w, c in times if t >= model.num_maskmem]
    med = lambda rows, i: statistics.median(r[i] for r in rows) if rows else None  # noqa: E731
    return {"frames": frames, "size": size, "median_ms": med(tracked, 0),
            "full_memory_median_ms": med(full, 0), "full_memory_median_cpu_ms": med(full, 1),
            "load": load_avg()}


def profile_frame(model, size: int, top: int = 15) -> dict:
    """CPU seconds of each part on one full-memory frame, and torch.profiler's top ops."""
    from torch.profiler import ProfilerActivity, profile

    parts = {"image_encoder": model.image_encoder, "memory_attention": model.memory_attention,
             "mask_decoder": model.sam_mask_decoder, "memory_encoder": model.memory_encoder}
    for layer in model.memory_attention.layers:
        parts[f"self_attn.{id(layer)}"] = layer.self_attn
        parts[f"cross_attn.{id(layer)}"] = layer.cross_attn_image
    spent: dict[str, float] = collections.defaultdict(float)
    began: dict[str, float] = {}
    hooks = []
    for name, module in parts.items():
        key = name.split(".")[0]
        hooks.append(module.register_forward_pre_hook(
            lambda *_, k=key: began.__setitem__(k, time.process_time())))
        hooks.append(module.register_forward_hook(
            lambda *_, k=key: spent.__setitem__(k, spent[k] + time.process_time() - began[k])))
    frames = _tracked_frames(model, model.num_maskmem + 2, size)
    for _ in range(model.num_maskmem + 1):
        next(frames)
    spent.clear()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        frame_idx, wall, cpu = next(frames)
    for hook in hooks:
        hook.remove()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)
    print(table, flush=True)
    return {"frame": frame_idx, "wall_ms": wall, "cpu_ms": cpu, "load": load_avg(),
            "part_cpu_s": {k: round(v, 3) for k, v in spent.items()}}


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


def _seed(size: int, objects: int) -> np.ndarray:
    """Label slice of frame 0: the disk (id 1), then small squares in a column (ids 2...)."""
    seed = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[:size, :size]
    seed[(yy - size // 3) ** 2 + (xx - size // 3) ** 2 < (size // 10) ** 2] = 1
    side = size // 16
    for k in range(1, objects):
        top = (2 * k * side) % (size - side)
        seed[top:top + side, size - 2 * side:size - side] = k + 1
    return seed


def peak_rss(model, frames: int, size: int, objects: int = 1) -> dict:
    """The GUI's job on a lazy (frames, size, size) clip: RSS samples and the peak."""
    from napari_segany.engine.progress import run
    from napari_segany.engine.propagation import MemorySession

    before, process_peak = rss_mb(), peak_mb()
    reset = reset_peak()
    session = MemorySession(LazyClip(frames, size), model, index=0)
    session.seed(_seed(size, objects))
    samples, every = {}, max(frames // 10, 1)
    start = _clock()

    def sample(progress):
        if progress.step and progress.step % every == 0:
            samples[progress.step] = round(rss_mb())
            print(f"  frame {progress.step}: RSS {samples[progress.step]} MB (load {load_avg()})",
                  flush=True)

    result = run(session.iter_propagate(direction="forward"), sample)
    wall, cpu = _since(start)
    out = {"frames": frames, "size": size, "model_input": model.image_size, "objects": objects,
           "rss_before_mb": round(before), "rss_samples_mb": samples,
           "peak_rss_mb": round(peak_mb()), "peak_excludes_loading": reset,
           "peak_rss_while_loading_mb": round(process_peak),
           "spilled_frames": session.state.bank.spilled_frames(),
           "frames_visited": len(result.frames), "s_per_frame": wall / 1e3 / frames,
           "cpu_s_per_frame": cpu / 1e3 / frames, "load": load_avg()}
    session.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=["t", "s"], choices=list(NAMES),
                        help="none (--models alone): only the --rss-frames runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[])
    parser.add_argument("--rss-image-size", type=int, nargs="*", default=[])
    parser.add_argument("--rss-objects", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "torch": torch.__version__}
    for key in args.models:
        for precision in args.precisions:
            name = NAMES[key]
            model = load(name, precision=precision)
            label = name if precision == "fp32" else f"{name} {precision}"
            row = {"encoder": time_encoder(model, args.runs)}
            print(f"{label}: encoder {row['encoder']}", flush=True)
            if args.frames > 1:
                row["propagation"] = time_propagation(model, args.frames, args.size)
                print(f"{label}: propagation {row['propagation']}", flush=True)
            if args.profile:
                row["profile"] = profile_frame(model, args.size)
                print(f"{label}: profile {row['profile']}", flush=True)
            results[label] = row
            del model
    sizes = args.rss_image_size + [1024] * (len(args.rss_frames) - len(args.rss_image_size))
    for frames, image_size in zip(args.rss_frames, sizes):
        model = load(NAMES["t"], image_size, args.precisions[0])
        row = peak_rss(model, frames, args.size, args.rss_objects)
        results[f"rss_{frames}_frames_input_{image_size}"] = row
        print(f"hiera_t peak RSS: {row}", flush=True)
        del model
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
