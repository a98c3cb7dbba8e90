"""Interactive segmentation latency: click -> preview, and commit into a large Labels layer.

Run (needs a display; Xvfb on a headless machine):

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_interactive.py [--quick]

On a shared machine, ``chrt -r 10`` in front (root) gives the process the cores as if the
machine were idle; the figures in docs/benchmarks.md say how they were taken.

* click -> preview: mobile_sam (random weights: timing does not depend on their values) on a
  1024 x 1024 image whose embedding is cached.  Measured in the widget, from adding a point
  to the Points layer to the preview layer written (prompt grouping + decoder + upsampling
  of the one shown candidate + bounding-box write), without the 15 ms debounce and without
  the canvas redraw; with the decoder in a worker (the widget's default: torch's thread
  count), in a worker with one intra-op thread, and on the GUI
  thread.  Thread CPU time is reported beside wall time: on a loaded machine the wall time
  includes waiting for a core.
* commit: a new object (a disk of ~2,800 px) into a 2048 x 2048 uint32 Labels layer that
  already holds 1,000 objects, through the widget's undo-aware path.

Prints a markdown table (pasted into docs/benchmarks.md) and writes benchmarks/results/*.json.
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

from _models import random_mobile_sam

HERE = Path(__file__).resolve().parent


def median_ms(samples) -> float:
    return 1000 * statistics.median(samples)


def p90_ms(samples) -> float:
    return 1000 * float(np.percentile(samples, 90))


def cell_like_image(side: int) -> np.ndarray:
    from skimage import data, transform

    cell = data.cell().astype(np.float32) / 255
    return (transform.resize(cell, (side, side)) * 255).astype(np.uint8)


#: how the widget decodes: (decoder in a worker, its intra-op threads; None: torch's count)
MODES = {"worker": (True, "default"), "worker_1_thread": (True, 1),
         "gui_thread": (False, None)}


class _Samples:
    def __init__(self):
        self.total, self.decode, self.cpu, self.add, self.write, self.areas = ([] for _ in range(6))


def _one_click(widget, rc, samples: _Samples, record: bool) -> None:
    """A point added to the Points layer, decoded at once (no debounce), preview written."""
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    widget.discard()
    QApplication.processEvents()
    t0 = time.perf_counter()
    widget.prompts.points.add(rc)  # what a click in add mode does
    t_add = time.perf_counter()
    widget.prompt_preview.decode_now()  # the debounce timer's slot, called at once
    while widget.decoder.busy:  # the worker's result, back on the GUI thread
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    if record:
        samples.total.append(time.perf_counter() - t0)
        samples.add.append(t_add - t0)


def bench_click(viewer, widget, clicks: int, modes) -> dict:
    """Median ms from a point added to the Points layer to the preview written, the modes
    alternating click by click (A/B in one run: a shared machine's load hits all alike)."""
    from napari_segany.gui.interactive.decoding import DECODE_THREADS

    rng = np.random.default_rng(0)
    samples = {mode: _Samples() for mode in modes}
    current = [None, False]  # the mode's samples, whether this click is recorded
    session, show = widget.session, widget.preview.show
    original = session._decode

    def timed_decode(*args):  # decoder + upsampling of the shown candidate + crop
        t0, c0 = time.perf_counter(), time.thread_time()
        out = original(*args)
        if current[1]:
            current[0].decode.append(time.perf_counter() - t0)
            current[0].cpu.append(time.thread_time() - c0)
        return out

    def timed_show(masks):  # writing the preview layer (changed bounding boxes only)
        t0 = time.perf_counter()
        show(masks)
        if current[1] and masks:
            current[0].write.append(time.perf_counter() - t0)
            current[0].areas.extend(m.area for m in masks)

    session._decode, widget.preview.show = timed_decode, timed_show
    for i in range(clicks + 3):
        rc = rng.integers(100, 924, 2)
        for mode in (modes if i % 2 == 0 else modes[::-1]):
            in_worker, threads = MODES[mode]
            widget.decoder.in_worker = in_worker
            widget.decoder.threads = DECODE_THREADS if threads == "default" else threads
            current[:] = samples[mode], i >= 3  # the first three: warm-up
            _one_click(widget, rc, samples[mode], i >= 3)
    session._decode, widget.preview.show = original, show
    return {key: value for mode in modes for key, value in _summary(mode, samples[mode]).items()}


def _summary(mode: str, s: _Samples) -> dict:
    return {f"preview_write_{mode}_ms": median_ms(s.write) if s.write else 0.0,
            f"mask_area_{mode}_px": int(np.median(s.areas)) if s.areas else 0,
            f"points_add_{mode}_ms": median_ms(s.add),
            f"click_to_preview_{mode}_ms": median_ms(s.total),
            f"click_to_preview_{mode}_p90_ms": p90_ms(s.total),
            f"decode_upsample_{mode}_ms": median_ms(s.decode),
            f"decode_upsample_cpu_{mode}_ms": median_ms(s.cpu)}


def labels_with_objects(side: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((side, side), np.uint32)
    yy, xx = np.mgrid[-20:21, -20:21]
    disk = yy ** 2 + xx ** 2 <= 20 ** 2
    for label, (r, c) in enumerate(rng.integers(25, side - 25, (n, 2)), start=1):
        labels[r - 20:r + 21, c - 20:c + 21][disk] = label
    return labels


def bench_commit(viewer, widget, commits: int) -> dict:
    from napari_segany.engine.interactive import ObjectMask, commit_mask
    from qtpy.QtWidgets import QApplication

    labels = viewer.add_labels(labels_with_objects(2048, 1000), name="1000 objects")
    widget.writer.attach(labels)
    yy, xx = np.mgrid[-30:31, -30:31]
    crop = yy ** 2 + xx ** 2 <= 30 ** 2
    rng = np.random.default_rng(1)
    gui_s, engine_s, naive_s = [], [], []
    for i in range(commits + 2):
        r, c = rng.integers(40, 2000, 2)
        mask = ObjectMask(("bench", i), (r - 30, r + 31, c - 30, c + 31), crop, 1.0, 0, 1)
        t0 = time.perf_counter()
        widget.writer.commit((), [mask], preserve=True)
        t1 = time.perf_counter()
        QApplication.processEvents()
        plane = labels.data.copy()
        t2 = time.perf_counter()
        commit_mask(plane, crop, 5000 + i, True, offset=(r - 30, c - 30), write=True)
        t3 = time.perf_counter()
        full = np.zeros(plane.shape, bool)  # the naive way: full-size mask, scan for max id
        full[r - 30:r + 31, c - 30:c + 31] = crop
        t4 = time.perf_counter()
        new_id = plane.max() + 1
        plane[full & (plane == 0)] = new_id
        t5 = time.perf_counter()
        if i >= 2:
            gui_s.append(t1 - t0)
            engine_s.append(t3 - t2)
            naive_s.append(t5 - t4)
    undo_t0 = time.perf_counter()
    labels.undo()
    undo_s = time.perf_counter() - undo_t0
    return {"commit_ms": median_ms(gui_s), "commit_p90_ms": p90_ms(gui_s),
            "commit_mask_engine_ms": median_ms(engine_s), "naive_full_array_ms": median_ms(naive_s),
            "undo_ms": 1000 * undo_s, "commits": commits, "max_id_after": int(labels.data.max())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", action="store_true",
                        help="viewer not shown: no canvas redraw competes with the decoder (Xvfb "
                             "draws with OpenGL in software, on the same two cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import napari

    viewer = napari.Viewer(show=not args.hidden)
    viewer.add_image(cell_like_image(1024), name="image 1024")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    t0 = time.perf_counter()
    widget.install_model(random_mobile_sam())  # what the model-loading worker hands back
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    widget.compute_embedding()
    embed_s = time.perf_counter() - t0
    results = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
               "load_average_at_start": os.getloadavg()[0],
               "viewer_shown": not args.hidden,
               "torch": torch.__version__, "model_load_s": load_s, "embedding_s": embed_s}
    results.update(bench_click(viewer, widget, 10 if args.quick else 40, list(MODES)))
    results["load_average_after_clicks"] = os.getloadavg()[0]
    results.update(bench_commit(viewer, widget, 10 if args.quick else 30))
    viewer.close()

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = "interactive_hidden.json" if args.hidden else "interactive.json"
    (out / name).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(TABLE.format(**results))


TABLE = """
| measure (mobile_sam, 1024 x 1024, cached embedding) | median | p90 |
|---|---|---|
| click -> preview written, decoder in a worker (the widget's way) | {click_to_preview_worker_ms:.1f} ms | {click_to_preview_worker_p90_ms:.1f} ms |
| of which decoder + upsampling one candidate (wall / thread CPU) | {decode_upsample_worker_ms:.1f} / {decode_upsample_cpu_worker_ms:.1f} ms | |
| click -> preview written, decoder in a worker with one intra-op thread | {click_to_preview_worker_1_thread_ms:.1f} ms | {click_to_preview_worker_1_thread_p90_ms:.1f} ms |
| of which decoder + upsampling one candidate (wall / thread CPU) | {decode_upsample_worker_1_thread_ms:.1f} / {decode_upsample_cpu_worker_1_thread_ms:.1f} ms | |
| click -> preview written, decoder on the GUI thread | {click_to_preview_gui_thread_ms:.1f} ms | {click_to_preview_gui_thread_p90_ms:.1f} ms |
| of which decoder + upsampling one candidate (wall / thread CPU) | {decode_upsample_gui_thread_ms:.1f} / {decode_upsample_cpu_gui_thread_ms:.1f} ms | |
| of which napari's own Points.add (the click itself) | {points_add_gui_thread_ms:.1f} ms | |
| of which writing the preview layer (mask of {mask_area_gui_thread_px} px) | {preview_write_gui_thread_ms:.1f} ms | |
| commit into 2048 x 2048 Labels with 1,000 objects (undo-aware) | {commit_ms:.2f} ms | {commit_p90_ms:.2f} ms |
| engine commit_mask alone (bbox, preserve) | {commit_mask_engine_ms:.3f} ms | |
| naive commit (full-size mask + max scan), for reference | {naive_full_array_ms:.1f} ms | |
| embedding of the 1024 x 1024 image (worker, once per slice) | {embedding_s:.2f} s | |
"""

if __name__ == "__main__":
    main()
