"""Opening a 32-slice stack with a warm embedding store vs recomputing the embeddings.

    python benchmarks/bench_store.py [--slices 32] [--side 1024] [--threads 2] [--quick]

mobile_sam with random weights (timing does not depend on their values) on a synthetic
(32, 1024, 1024) uint16 stack (blurred blobs + noise), normalised by fixed contrast limits as
the widget does with a layer's limits.

* **cold**: what the widget does for a slice it has never seen: hash the slice, map it to
  uint8 RGB, run the encoder, write the embedding to the store (float16);
* **warm**: a *new process* (a new napari session) with the store filled: hash the slice and
  read its embedding from the store through the in-memory cache.  The OS page cache holds
  the store files (a shared machine cannot drop it); a cold disk adds its read time
  (2 MiB per slice).

Reports total and per-slice times, the store size on disk, and the load average (the
machine is shared).  Writes benchmarks/results/store.json.

    python benchmarks/bench_store.py --fp16-parity

measures what a float16 store changes in the outputs, on the parity cases (synthesized
weights and images of ../shared/parity, every prompt run of case.npz): each prompt is decoded
from the fresh float32 embedding and from the same embedding after a float16 store round
trip.  Writes benchmarks/results/store_fp16.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _models import random_mobile_sam

HERE = Path(__file__).resolve().parent
CONTRAST = (0.0, 3000.0)


def synthetic_stack(n: int, side: int, seed: int = 0) -> np.ndarray:
    """(n, side, side) uint16: blurred bright blobs moving slowly through z, plus noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, side, (60, 2))
    radii = rng.uniform(side / 80, side / 25, 60)
    yy, xx = np.mgrid[:side, :side]
    stack = np.empty((n, side, side), np.uint16)
    for z in range(n):
        plane = np.zeros((side, side), np.float32)
        for (cy, cx), r in zip(centres + z * 0.5, radii):
            plane[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1500
        plane = ndimage.gaussian_filter(plane, 2) + rng.normal(300, 40, plane.shape)
        stack[z] = np.clip(plane, 0, 65535).astype(np.uint16)
    return stack


def cold(stack: np.ndarray, store_dir: Path) -> dict:
    from napari_segany.engine.embeddings import (
        EmbeddingCache, EmbeddingKey, EmbeddingStore, model_identity, slice_digest,
    )
    from napari_segany.engine.images import to_uint8_rgb
    from napari_segany.engine.interactive import Predictor

    model = random_mobile_sam()
    predictor = Predictor(model)
    model_id = model_identity(model)
    cache = EmbeddingCache(backing_store=EmbeddingStore(store_dir))
    per_slice, encode_s = [], []
    t_all = time.perf_counter()
    for plane in stack:
        t0 = time.perf_counter()
        key = EmbeddingKey(slice_digest(plane), model_id, CONTRAST)
        rgb = to_uint8_rgb(plane, CONTRAST)
        t1 = time.perf_counter()
        embedding = predictor.encode(rgb)
        encode_s.append(time.perf_counter() - t1)
        cache.put(key, embedding)
        per_slice.append(time.perf_counter() - t0)
    return {"cold_total_s": time.perf_counter() - t_all,
            "cold_per_slice_median_s": statistics.median(per_slice),
            "encode_median_s": statistics.median(encode_s)}


WARM_CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
t_start = time.perf_counter()
from napari_segany.engine.embeddings import EmbeddingCache, EmbeddingKey, EmbeddingStore, slice_digest
stack = np.load(sys.argv[1], mmap_mode="r")
model_id, lo, hi = sys.argv[3], float(sys.argv[5]), float(sys.argv[6])
t_import = time.perf_counter() - t_start
cache = EmbeddingCache(backing_store=EmbeddingStore(sys.argv[2]))
per_slice = []
t0 = time.perf_counter()
for plane in stack:
    t = time.perf_counter()
    entry = cache.get(EmbeddingKey(slice_digest(np.asarray(plane)), model_id, (lo, hi)))
    assert entry is not None, "store miss"
    per_slice.append(time.perf_counter() - t)
print(json.dumps({"warm_total_s": time.perf_counter() - t0, "warm_first_slice_s": per_slice[0],
                  "warm_per_slice_median_s": float(np.median(per_slice)),
                  "warm_imports_s": t_import}))
"""


def warm(stack_file: Path, store_dir: Path, model_id: str, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", WARM_CHILD, str(stack_file), str(store_dir), model_id,
                          str(threads), str(CONTRAST[0]), str(CONTRAST[1])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


PARITY = HERE.parent.parent / "shared" / "parity"
PARITY_IMAGES = {"chelsea": "skimage_chelsea.png", "cell": "skimage_cell_rgb.png"}


def parity_model(case: str):
    import importlib.util

    from napari_segany.engine.weights import load_model

    spec = importlib.util.spec_from_file_location("synth", PARITY / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    state = synth.synth_state_dict(synth.load_schema(PARITY / case / "schema.json"), seed=0)
    return load_model(case, checkpoint=state, device="cpu")


def fp16_parity(cases=("mobile_sam", "sam_vit_b")) -> dict:
    """Max |low-res logit| and |IoU| change and mask pixel flips, float16 store vs float32."""
    from PIL import Image

    from napari_segany.engine.embeddings import EmbeddingKey, EmbeddingStore
    from napari_segany.engine.interactive import Predictor

    results = {}
    for case in cases:
        model, npz = parity_model(case), np.load(PARITY / case / "case.npz")
        worst = {"low_res_max_abs": 0.0, "iou_max_abs": 0.0, "flipped": 0, "pixels": 0,
                 "max_flip_fraction_per_mask": 0.0, "runs": 0}
        for image_name, file in PARITY_IMAGES.items():
            image = np.array(Image.open(PARITY / "images" / file))
            fresh, rounded = Predictor(model), Predictor(model)
            fresh.set_image(image)
            with tempfile.TemporaryDirectory() as tmp:
                store, key = EmbeddingStore(tmp), EmbeddingKey(image_name, case)
                store.put(key, fresh.embedding)
                entry = store.get(key)
            rounded.set_embedding(entry)
            for run in sorted({k.split("__")[1] for k in npz.files if k.startswith(image_name + "__")
                               and k.endswith("__multimask_output") and "boxbatch" not in k}):
                kwargs = _parity_prompt(npz, f"{image_name}__{run}")
                if kwargs is None:
                    continue
                (m32, s32, l32), (m16, s16, l16) = fresh.predict(**kwargs), rounded.predict(**kwargs)
                flips = (m32 != m16).reshape(len(m32), -1)
                worst["low_res_max_abs"] = max(worst["low_res_max_abs"], float(np.abs(l32 - l16).max()))
                worst["iou_max_abs"] = max(worst["iou_max_abs"], float(np.abs(s32 - s16).max()))
                worst["flipped"] += int(flips.sum())
                worst["pixels"] += int(flips.size)
                worst["max_flip_fraction_per_mask"] = max(worst["max_flip_fraction_per_mask"],
                                                          float(flips.mean(axis=1).max()))
                worst["runs"] += 1
        results[case] = worst
        print(case, worst, flush=True)
    return results


def _parity_prompt(npz, prefix: str) -> dict | None:
    if f"{prefix}__mask_input_from" in npz.files:
        return None  # refinement runs feed logits of the reference; skipped here
    kwargs = {"multimask_output": bool(npz[f"{prefix}__multimask_output"])}
    if f"{prefix}__point_coords" in npz.files:
        kwargs.update(point_coords=npz[f"{prefix}__point_coords"],
                      point_labels=npz[f"{prefix}__point_labels"])
    if f"{prefix}__box" in npz.files:
        kwargs["box"] = npz[f"{prefix}__box"]
    return kwargs if len(kwargs) > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 slices")
    parser.add_argument("--fp16-parity", action="store_true", help="float16 effect on the parity cases")
    args = parser.parse_args()
    if args.fp16_parity:
        torch.set_num_threads(args.threads)
        found = fp16_parity()
        (HERE / "results" / "store_fp16.json").write_text(json.dumps(found, indent=2))
        return
    n = 4 if args.quick else args.slices
    torch.set_num_threads(args.threads)
    from napari_segany.engine.embeddings import model_identity

    load_start = os.getloadavg()
    stack = synthetic_stack(n, args.side)
    with tempfile.TemporaryDirectory() as tmp:
        store_dir, stack_file = Path(tmp) / "store", Path(tmp) / "stack.npy"
        np.save(stack_file, stack)
        results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                              f"{torch.__version__}, {args.threads} threads",
                   "slices": n, "side": args.side, "load_average_start": load_start}
        results.update(cold(stack, store_dir))
        model_id = model_identity(random_mobile_sam())
        results.update(warm(stack_file, store_dir, model_id, args.threads))
        results["store_mib"] = store_bytes(store_dir) / 2 ** 20
    results["load_average_end"] = os.getloadavg()
    results["speedup"] = results["cold_total_s"] / results["warm_total_s"]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "store.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(TABLE.format(**results))


TABLE = """
| {slices} slices of {side} x {side} (mobile_sam) | total | per slice (median) |
|---|---|---|
| recompute: hash + uint8 + encoder + store write | {cold_total_s:.1f} s | {cold_per_slice_median_s:.2f} s |
| of which the encoder | | {encode_median_s:.2f} s |
| warm store, new process: hash + read (float16 -> float32) | {warm_total_s:.2f} s | {warm_per_slice_median_s:.3f} s |
| store on disk | {store_mib:.0f} MiB | |
"""

if __name__ == "__main__":
    main()
