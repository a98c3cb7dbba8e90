"""Propagation speed: seconds per slice through a 32-slice 512 x 512 stack with mobile_sam.

Run (no display needed):

    python benchmarks/bench_propagation.py [--quick] [--threads 2] [--cold-only] [--pairs 2]

* mobile_sam with random weights (timing does not depend on their values), stop rules off
  so that every slice is decoded (random weights give random scores and areas).
* The stack: a textured background with a disk drifting and shrinking through it; the seed
  is the disk on the middle slice, propagated both ways (31 decoded slices).
* cold: empty embedding cache, embeddings computed ahead by the prefetch thread while the
  decoder runs; warm: the same run again on the filled cache (decoder time only).
* warm breakdown: the decoder (``decode_lowres``), the upsampling of the kept mask
  (``mask_crop``), and the rest (prompts from the bounding box, stop rules, bookkeeping,
  start/stop of the prefetch thread); and a bare ``decode_lowres`` + ``mask_crop`` loop on
  one embedding as the floor.
* cold vs embedding (``_cold_propagation.py``): per precision (fp32, bf16), cold runs with
  the engine's policy (``overlap``, prefetch 2: the next slices are encoded while the walk
  decodes) and ``on demand`` (prefetch 0: encoded only when the walk needs it), alternating
  in one process, against one embedding measured right before; the goal is a ratio <= 1.1.
  ``--cold-only`` runs just this part.
* The machine may be shared: the load average is recorded before and after each phase,
  and CPU time (process) is given beside wall time.

On a shared machine, ``chrt -r 10 python benchmarks/bench_propagation.py`` (as root, about
25 s) stands for a dedicated 2-core machine, as for bench_interactive.py (``nice -n -20``
is not enough: two OpenMP threads still wait for each other); the scheduler, niceness and
load average are recorded with the figures.

Prints a markdown table (for docs/benchmarks.md) and writes benchmarks/results/propagation.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from _cold_propagation import cold_ratios, cold_table
from _models import random_mobile_sam

HERE = Path(__file__).resolve().parent


def drifting_disk_stack(n: int, side: int, seed: int = 0):
    """(n, side, side) uint8 textured stack and the (side, side) seed mask on slice n // 2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:side, :side]
    volume = np.empty((n, side, side), np.uint8)
    for z in range(n):
        background = rng.normal(60, 12, (side, side))
        cy, cx, r = side * 0.3 + 3 * z, side * 0.3 + 4 * z, side * 0.15 - 0.8 * abs(z - n // 2)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
        volume[z] = np.clip(background + 120 * inside, 0, 255).astype(np.uint8)
    z = n // 2
    cy, cx, r = side * 0.3 + 3 * z, side * 0.3 + 4 * z, side * 0.15
    return volume, (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


class Timers:
    """Wall time spent in the decoder (Predictor.decode_lowres) and in the upsampling of the
    kept mask (propagation_upsample.mask_crop), by patching them for the duration."""

    def __init__(self):
        from napari_segany.engine.propagation import upsample as propagation_upsample
        from napari_segany.engine.interactive import Predictor

        self.targets = [(Predictor, "decode_lowres"), (propagation_upsample, "mask_crop")]
        self.originals = [getattr(owner, name) for owner, name in self.targets]
        self.decode, self.upsample = [], []

    def __enter__(self):
        for (owner, name), func, store in zip(self.targets, self.originals, (self.decode, self.upsample)):
            setattr(owner, name, _timed(store, func))
        return self

    def __exit__(self, *exc):
        for (owner, name), func in zip(self.targets, self.originals):
            setattr(owner, name, func)


def _timed(store, func):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = func(*args, **kwargs)
        store.append(time.perf_counter() - t0)
        return out
    return wrapper


def run_once(volume, seed_mask, model, cache, prefetch=2) -> dict:
    import napari_segany as nsa
    from napari_segany.engine.propagation import StopRules

    rules = StopRules(min_score=None, max_area_ratio=None, stop_on_empty=False)
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = nsa.propagate(volume, seed_mask, len(volume) // 2, model, rules=rules, cache=cache,
                           prefetch=prefetch)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    decoded = len(result.reports) - 1
    return {"wall_s": wall, "cpu_s": cpu, "decoded": decoded, "encoded": result.encoded,
            "s_per_slice": wall / decoded, "cpu_s_per_slice": cpu / decoded,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def warm_runs(volume, seed_mask, model, cache, repeats: int) -> dict:
    runs, decode_s, upsample_s = [], [], []
    for _ in range(repeats):
        with Timers() as timers:
            runs.append(run_once(volume, seed_mask, model, cache))
        decode_s += timers.decode
        upsample_s += timers.upsample
    best = min(runs, key=lambda r: r["wall_s"])
    per_slice = statistics.median(r["s_per_slice"] for r in runs)
    decoder = statistics.median(decode_s)
    upsample = statistics.median(upsample_s)
    return {"runs": runs, "ms_per_slice": 1000 * per_slice,
            "ms_per_slice_best_run": 1000 * best["s_per_slice"],
            "cpu_ms_per_slice": 1000 * statistics.median(r["cpu_s_per_slice"] for r in runs),
            "decoder_ms": 1000 * decoder, "upsample_ms": 1000 * upsample,
            "rest_ms": 1000 * (per_slice - decoder - upsample)}


def bare_decoder_ms(model, volume, seed_mask, cache, reps: int) -> float:
    """decode_lowres + mask_crop of one mask, nothing else: the floor of a warm slice."""
    from napari_segany.engine.interactive import crop_to_bbox
    from napari_segany.engine.interactive import Predictor
    from napari_segany.engine.propagation import PromptOptions
    from napari_segany.engine.propagation.prompts import derive_prompts
    from napari_segany.engine.propagation.upsample import mask_crop

    predictor = Predictor(model)
    entry = next(iter(cache._entries.values()))
    predictor.set_embedding(entry)
    bbox, crop = crop_to_bbox(seed_mask)
    p = derive_prompts(bbox, crop, None, seed_mask.shape, PromptOptions(), True)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        low_res, _ = predictor.decode_lowres(p.points, p.labels, p.box, None, False)
        mask_crop(predictor, low_res)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def upsample_ms(model, side: int, reps: int) -> dict:
    """Full ``upsample`` + crop vs ``mask_crop`` for a nucleus-sized mask (a disk of 1/4 of
    the side) and for a mask covering the whole slice (random weights give such masks)."""
    from napari_segany.engine.interactive import crop_to_bbox
    from napari_segany.engine.interactive import Predictor
    from napari_segany.engine.propagation.upsample import mask_crop

    predictor = Predictor(model)
    predictor.set_embedding(torch.zeros(1, 256, 64, 64), (side, side))
    yy, xx = np.mgrid[:256, :256]
    cases = {"nucleus": np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 32 ** 2, 4.0, -4.0),
             "whole slice": np.full((256, 256), 4.0)}
    out = {}
    for name, logits in cases.items():
        low_res = torch.from_numpy(logits.astype(np.float32))[None, None]
        for label, func in (("upsample", lambda: crop_to_bbox(predictor.upsample(low_res)[0, 0].numpy())),
                            ("mask_crop", lambda: mask_crop(predictor, low_res))):
            func()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                func()
                times.append(time.perf_counter() - t0)
            out[f"{name}: {label}"] = 1000 * statistics.median(times)
    return out


def model_with_precision(precision: str):
    from napari_segany.models.precision import set_encoder_precision

    model = random_mobile_sam()
    set_encoder_precision(model, precision)
    return model


def scheduler() -> str:
    policy = os.sched_getscheduler(0)
    name = {os.SCHED_OTHER: "normal", os.SCHED_RR: "realtime (chrt -r)",
            os.SCHED_FIFO: "realtime (chrt -f)"}.get(policy, str(policy))
    return f"{name}, nice {os.nice(0)}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="8 slices, one warm run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--cold-only", action="store_true", help="only cold vs embedding")
    parser.add_argument("--pairs", type=int, default=2, help="new/old alternations per precision")
    parser.add_argument("--slices", type=int, default=None, help="stack depth (32; --quick: 8)")
    args = parser.parse_args()
    n = args.slices or (8 if args.quick else 32)
    torch.set_num_threads(args.threads)
    from napari_segany.engine.embeddings import EmbeddingCache

    model = random_mobile_sam()
    volume, seed_mask = drifting_disk_stack(n, args.side)
    cache = EmbeddingCache()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "torch": torch.__version__, "threads": args.threads, "slices": n, "side": args.side,
               "model": "mobile_sam (random weights)", "scheduler": scheduler()}
    results["cold_vs_embedding"] = cold_ratios(model_with_precision, volume, seed_mask,
                                               pairs=args.pairs)
    print(cold_table(results["cold_vs_embedding"], n, args.side), flush=True)
    if args.cold_only:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "propagation_cold.json").write_text(json.dumps(results, indent=2))
        return
    results["cold"] = run_once(volume, seed_mask, model, cache)
    results["warm"] = warm_runs(volume, seed_mask, model, cache, 1 if args.quick else 3)
    results["bare_decoder_ms"] = bare_decoder_ms(model, volume, seed_mask, cache, 5 if args.quick else 15)
    results["upsample_ms"] = upsample_ms(model, args.side, 5 if args.quick else 20)
    torch.set_num_threads(1)
    results["warm_1_thread"] = warm_runs(volume, seed_mask, model, cache, 1)
    results["bare_decoder_1_thread_ms"] = bare_decoder_ms(model, volume, seed_mask, cache, 10)
    torch.set_num_threads(args.threads)

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "propagation.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(table(results))


def table(r: dict) -> str:
    cold, warm, one = r["cold"], r["warm"], r["warm_1_thread"]
    return f"""
| mobile_sam, {r['slices']} x {r['side']} x {r['side']}, {r['threads']} threads | per slice | load avg (1 min) |
|---|---|---|
| cold cache (encoder + decoder, prefetch 2 ahead) | {cold['s_per_slice']:.2f} s (CPU {cold['cpu_s_per_slice']:.2f} s) | {cold['load_before']:.1f} -> {cold['load_after']:.1f} |
| warm cache, median of runs | {warm['ms_per_slice']:.0f} ms (CPU {warm['cpu_ms_per_slice']:.0f} ms) | {warm['runs'][0]['load_before']:.1f} -> {warm['runs'][-1]['load_after']:.1f} |
| of which decoder (`decode_lowres`, one mask) | {warm['decoder_ms']:.0f} ms | |
| of which upsampling the kept mask (`mask_crop`) | {warm['upsample_ms']:.1f} ms | |
| of which the rest (prompts, rules, bookkeeping) | {warm['rest_ms']:.1f} ms | |
| bare `decode_lowres` + `mask_crop` floor | {r['bare_decoder_ms']:.0f} ms | |
| warm cache, 1 thread | {one['ms_per_slice']:.0f} ms (decoder {one['decoder_ms']:.0f}, upsample {one['upsample_ms']:.1f}, rest {one['rest_ms']:.1f}) | {one['runs'][0]['load_before']:.1f} |
| bare floor, 1 thread | {r['bare_decoder_1_thread_ms']:.0f} ms | |

| upsampling the kept mask, {r['side']} x {r['side']} ({r['threads']} threads) | ms |
|---|---|
""" + "".join(f"| {k} | {v:.2f} |\n" for k, v in r["upsample_ms"].items())


if __name__ == "__main__":
    main()
