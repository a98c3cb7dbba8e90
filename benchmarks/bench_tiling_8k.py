"""An 8192 x 8192 RGB image, tile by tile: time and peak RSS, through the API and the widget.

    python benchmarks/bench_tiling_8k.py --phase api [--threads 2] [--store DIR]
    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_tiling_8k.py --phase gui --store DIR

mobile_sam with random weights (timing does not depend on their values); tiles of 1024 px
with a halo of 128 (121 tiles); a float16 store.  Peak RSS is the kernel's high-water mark
(``VmHWM``), reset before each step through ``/proc/self/clear_refs``; the 8192 x 8192 x 3
uint8 image itself is 192 MiB of it.

* api: embed every tile into the store (``iter_embed``; tiles already stored are skipped),
  then in a fresh TiledPredictor on the warm store: a point, a box across 4 tiles, a
  3000 x 3000 box (25 tiles), and everything mode (grid, 4 x 4 points per tile, score filters
  off so that every candidate is kept and merged) over the whole image;
* gui: the widget on the same image and store: a click, a box across tiles, a commit
  (napari's own Labels and preview layers are 8192 x 8192 too); then the Segment Everything
  widget on the same layer (tiles from the store, grid 4 x 4 per tile, result layer).

Writes benchmarks/results/tiling_8k_<phase>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _models import random_mobile_sam

HERE = Path(__file__).resolve().parent
SIDE, TILE, HALO = 8192, 1024, 128
CONTRAST = (0.0, 255.0)  # what the widget uses for a uint8 layer: the store is shared


def mib(kib: int) -> float:
    return kib / 1024


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def release() -> None:
    """Free what Python dropped and give glibc's free heap back to the OS, so that a step's
    RSS is what it holds, not what earlier steps left in the allocator."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak() -> None:
    release()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


class Step:
    """Times a block and records its peak RSS in MiB."""

    def __init__(self, results: dict, name: str):
        self.results, self.name = results, name

    def __enter__(self):
        reset_peak()
        self.rss0 = status("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.results[self.name] = {"s": round(time.perf_counter() - self.t0, 3),
                                   "rss_before_mib": round(mib(self.rss0)),
                                   "peak_rss_mib": round(mib(status("VmHWM")))}
        print(self.name, self.results[self.name], flush=True)


def synthetic_8k(seed: int = 0) -> np.ndarray:
    """(8192, 8192, 3) uint8: ~6000 cells (disks of 8-40 px) on a noisy background, drawn
    patch by patch so that no full-size temporary is made."""
    rng = np.random.default_rng(seed)
    image = np.empty((SIDE, SIDE, 3), np.uint8)
    for y in range(0, SIDE, 1024):  # noise in bands
        image[y:y + 1024] = rng.integers(20, 60, (1024, SIDE, 3), dtype=np.uint8)
    for _ in range(6000):
        r = int(rng.integers(8, 40))
        cy, cx = rng.integers(r, SIDE - r, 2)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disk = yy ** 2 + xx ** 2 <= r * r
        colour = rng.integers(120, 250, 3).astype(np.uint8)
        image[cy - r:cy + r + 1, cx - r:cx + r + 1][disk] = colour
    return image


def api_phase(image, store_dir: Path, results: dict) -> None:
    from napari_segany.engine.embeddings import EmbeddingStore
    from napari_segany.engine.tiling import TiledPredictor
    from napari_segany.engine.everything import segment_everything_tiled

    model = random_mobile_sam()
    tiled = TiledPredictor(model, TILE, HALO, store=EmbeddingStore(store_dir))
    with Step(results, "set_image (hash 192 MiB)"):
        tiled.set_image(image, CONTRAST)
    with Step(results, f"embed the {len(tiled.grid)} tiles not in the store yet"):
        for _ in tiled.iter_embed():
            pass
    results["tiles_computed"], digest = tiled.encodes, tiled.digest
    del tiled  # a new session: only the store is shared
    warm = TiledPredictor(model, TILE, HALO, store=EmbeddingStore(store_dir))
    warm.set_image(image, CONTRAST, digest=digest)
    with Step(results, "point (1 tile, warm store)"):
        warm.predict_crops([[4100, 4000]], [1])
    with Step(results, "box across 4 tiles"):
        warm.predict_crops(box=[3700, 3600, 4500, 4400])
    with Step(results, "box 3000 x 3000 (25 tiles)"):
        warm.predict_crops(box=[2000, 2000, 5000, 5000])
    results["cache_mib_after_prompts"] = round(warm.cache.nbytes / 2 ** 20)
    del warm
    with Step(results, "everything, grid 4x4 per tile, no score filter, all tiles"):
        result = segment_everything_tiled(image, model, "grid", tile=TILE, halo=HALO,
                                          store=EmbeddingStore(store_dir), contrast_limits=CONTRAST,
                                          points_per_side=4, pred_iou_thresh=0,
                                          stability_score_thresh=0)
    results["everything_objects"] = len(result)
    results["everything_masks_mib"] = round(sum(r.mask.nbytes for r in result.records) / 2 ** 20, 1)
    with Step(results, "everything labels image (int32, 256 MiB)"):
        _ = result.labels


def gui_phase(image, store_dir: Path, results: dict) -> None:
    import napari

    with Step(results, "viewer + image layer + widget"):
        viewer = napari.Viewer(show=True)
        viewer.add_image(image, name="8k", rgb=True)
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
        widget.store_panel.set_folder(store_dir)
        widget.install_model(random_mobile_sam())
    with Step(results, "click (tiled session, 1 tile from the store)"):
        widget.segment(points=[[4000, 4100]])
    assert widget.image_session.tiled is not None, "the slice was not tiled"
    with Step(results, "box across 4 tiles"):
        widget.segment(boxes=[[3600, 3700, 4400, 4500]])
    with Step(results, "commit"):
        widget.commit()
    results["tiles_computed_in_gui"] = widget.image_session.tiled.predictor.encodes
    everything_widget_step(viewer, results)
    viewer.close()


def everything_widget_step(viewer, results: dict) -> None:
    """The Segment Everything widget on the same layer: its store (the layer's metadata),
    grid 4 x 4 per tile, filters off, tile by tile in its worker; then the result layer."""
    _, every = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    every.set_method("grid")
    every.model = random_mobile_sam()  # handed over as a load would (random weights)
    every.model_choice = every.model_choice_wanted()
    every.set_tiling(tile=TILE, halo=HALO)
    every.set_params(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    every.set_filters(min_area=0, max_area_fraction=None)
    with Step(results, "everything widget, grid 4x4 per tile, all tiles from the store"):
        result = every.run()[()]
    results["everything_widget_objects"] = len(result)
    results["everything_widget_status"] = every.status_label.text()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("api", "gui"), default="api")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", type=Path, help="store folder (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"phase": args.phase, "threads": args.threads, "torch": torch.__version__,
               "load_average_start": os.getloadavg()}
    with Step(results, "make the 8192 x 8192 x 3 image"):
        image = synthetic_8k()
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = args.store or Path(tmp) / "store"
        (api_phase if args.phase == "api" else gui_phase)(image, store_dir, results)
        results["store_mib"] = round(sum(p.stat().st_size for p in store_dir.rglob("*")
                                         if p.is_file()) / 2 ** 20)
    results["load_average_end"] = os.getloadavg()
    results["process_peak_rss_mib"] = round(mib(status("VmHWM")))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"tiling_8k_{args.phase}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
