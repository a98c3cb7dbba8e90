"""Main-thread stall probe: how long the Qt main thread is blocked during each job of the docks.

A QTimer ticks every 10 ms on the main thread of a shown napari viewer; around each job (driven
through the docks' public methods, which keep the event loop running while they wait, as a user's
session does) the probe records the longest gap between two ticks and the number of gaps over
50 ms.  A gap is time the viewer could not repaint or react to the mouse.

Models: the GUI's cost (painting, layers, commits) depends on the image size and the number of
masks, not on the weights, so the run uses the real architectures with synthesized weights
(``shared/parity/<case>/``) where a run stays short -- mobile_sam (model load, embedding and
clicks on a 1024 x 1024 image), FastSAM-s and MobileSAMv2's detector -- and a tiny SAM (256 px
input, random weights, masks at full image size) for the SAM grid and the 24-slice stack, where
mobile_sam would take minutes on two cores.  Random weights keep every candidate
(``pred_iou_thresh=0`` ...): hundreds of noise-like masks, a heavy load for the GUI side.

Run under Xvfb (the viewer is shown)::

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/bench_stalls.py [--json out.json]

``NAPARI_SEGANY_SHARED`` (or ``../shared`` beside the repository) must hold the parity folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GAP_LIMIT_MS = 50.0
RANDOM_WEIGHTS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
NO_FILTERS = dict(min_area=0, max_area_fraction=None)


class StallProbe:
    """A 10 ms QTimer on the main thread; ``gaps`` between its ticks while it runs."""

    def __init__(self, interval_ms: int = 10, where: bool = False, profile: bool = False):
        from qtpy.QtCore import QTimer

        from _gap_profile import GapProfiler

        self.where = Sampler() if where else None
        self.profile = GapProfiler() if profile else None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())
        if self.where is not None:
            self.where.last_tick = self.ticks[-1]
        if self.profile is not None:
            self.profile.tick(self.ticks[-1])

    def __enter__(self):
        self.ticks = [time.perf_counter()]
        self.timer.start()
        if self.where is not None:
            self.where.start(self.ticks[0])
        if self.profile is not None:
            self.profile.start(self.ticks[0])
        return self

    def __exit__(self, *exc) -> None:
        settle(0.3)  # what the job leaves to the event loop (redraws, queued slots) counts too
        self.timer.stop()
        self.ticks.append(time.perf_counter())
        if self.where is not None:
            self.where.stop()
        if self.profile is not None:
            self.profile.stop()

    def summary(self) -> tuple[float, int]:
        gaps = np.diff(self.ticks) * 1000
        return float(gaps.max()), int((gaps > GAP_LIMIT_MS).sum())


class Sampler:
    """``--where``: a thread that, while the main thread has not ticked for 50 ms, samples
    its stack every 5 ms (the innermost frames of this project and napari), and those of
    the plugin's workers (one may hold the GIL); prints the samples of the longest gap.
    Few samples in a long gap: the sampler could not get the GIL either."""

    def __init__(self):
        import threading

        self.threading, self.last_tick, self.running = threading, 0.0, False
        self.gaps: dict[float, list[str]] = {}  # gap start (its last tick) -> samples

    def start(self, now: float) -> None:
        self.last_tick, self.running, self.gaps = now, True, {}
        self.main = self.threading.main_thread().ident
        self.thread = self.threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        import collections

        self.running = False
        self.thread.join()
        if not self.gaps:
            return
        start = max(self.gaps, key=lambda t: len(self.gaps[t]))
        print(f"    longest gap, sampled ({len(self.gaps[start])} samples, main + workers):")
        for where, n in collections.Counter(self.gaps[start]).most_common(6):
            print(f"      {n:5d} x  {where}")

    def _run(self) -> None:
        import traceback

        while self.running:
            time.sleep(0.005)
            start = self.last_tick
            if time.perf_counter() - start < GAP_LIMIT_MS / 1000:
                continue
            samples = self.gaps.setdefault(start, [])
            for ident, frame in sys._current_frames().items():
                if ident == self.threading.get_ident():
                    continue
                stack = traceback.extract_stack(frame)
                ours = [f for f in stack if "napari_segany" in f.filename or "napari/" in f.filename]
                where = " < ".join(f"{Path(f.filename).stem}:{f.lineno} {f.name}"
                                   for f in reversed((ours or stack)[-4:]))
                if ident == self.main:
                    samples.append(where)
                elif ours:  # a worker of ours: it may hold the GIL the main thread waits for
                    samples.append("[worker] " + where)


def settle(seconds: float) -> None:
    """Run the event loop for ``seconds`` (the probe's ticks come through it)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.002)


class Table:
    def __init__(self, where: bool = False, profile: bool = False):
        from _gc_pauses import GcPauses

        self.rows: list[dict] = []
        self.where, self.profile = where, profile
        self.gc = GcPauses()

    def measure(self, job: str, action) -> object:
        mark = self.gc.mark()
        with StallProbe(where=self.where, profile=self.profile) as probe:
            t0 = time.perf_counter()
            out = action()
            seconds = time.perf_counter() - t0
        longest, over = probe.summary()
        gc_ms, gc_where = self.gc.longest_since(mark)
        self.rows.append({"job": job, "longest_gap_ms": round(longest, 1), "gaps_over_50ms": over,
                          "job_s": round(seconds, 2), "load_1min": os.getloadavg()[0],
                          "longest_gc_ms": round(gc_ms, 1), "gc_where": gc_where})
        gc_text = f"   Python GC {gc_ms:.0f} ms, {gc_where}" if gc_ms else ""
        print(f"{job:<48} {longest:8.1f} ms {over:4d}   ({seconds:.1f} s){gc_text}", flush=True)
        return out

    def markdown(self) -> str:
        lines = ["| job | longest gap | gaps > 50 ms | longest Python GC (>= 10 ms) | job time "
                 "| load (1 min) |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            gc_cell = f"{r['longest_gc_ms']:.0f} ms, {r['gc_where']}" if r["longest_gc_ms"] else "-"
            lines.append(f"| {r['job']} | {r['longest_gap_ms']:.0f} ms | {r['gaps_over_50ms']} | "
                         f"{gc_cell} | {r['job_s']:.1f} s | {r['load_1min']:.2f} |")
        return "\n".join(lines)


# ------------------------------------------------------------------ models and images
def shared_dir() -> Path:
    env = os.environ.get("NAPARI_SEGANY_SHARED")
    return Path(env) if env else HERE.parent.parent / "shared"


def synth_file(case: str, folder: Path) -> Path:
    """The parity case's schema filled by its synth.py, saved as a state-dict checkpoint."""
    sys.path.insert(0, str(shared_dir() / "parity"))
    from synth import load_schema, synth_state_dict

    path = folder / f"{case}.synth.pt"
    torch.save(synth_state_dict(load_schema(shared_dir() / "parity" / case / "schema.json")), path)
    return path


def register_tiny_sam(folder: Path) -> Path:
    """A tiny SAM (256 px input) in the registry, and its random-weights file."""
    from napari_segany.models import registry
    from napari_segany.models.registry import ModelSpec

    kwargs = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=256)
    spec = ModelSpec(
        name="tiny_sam", family="sam", task=registry.PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=kwargs,
        input_size=256, file_name="tiny_sam.pt", license="Apache-2.0 (test weights)",
        checkpoint_format="state_dict", description="tiny SAM (benchmark, random weights)")
    registry.REGISTRY[spec.name] = spec
    torch.manual_seed(0)
    path = folder / "tiny_sam.pt"
    torch.save(spec.build().state_dict(), path)
    return path


def visible_fastsam(path: Path):
    """FastSAM-s with the synthesized weights, its masks made non-empty (random mask logits
    are all <= 0): every object's coefficients select prototype 30."""
    from napari_segany.engine.weights import load_model

    model = load_model("fastsam_s", checkpoint=str(path), device="cpu")
    for level in model.head.cv4:
        with torch.no_grad():
            level[-1].weight.zero_()
            level[-1].bias.zero_()
            level[-1].bias[30] = 10.0
    return model


def cells(side: int, seed: int = 0) -> np.ndarray:
    """Bright blobs on a dim, noisy background (uint8)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    image = rng.normal(40, 8, (side, side))
    for _ in range(side // 16):
        r, c, rad = rng.integers(0, side, 2).tolist() + [int(rng.integers(side // 64, side // 24))]
        image[(yy - r) ** 2 + (xx - c) ** 2 < rad ** 2] += 120
    return np.clip(image, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ the jobs
def baseline_jobs(viewer, table: Table):
    """napari alone, for scale: what a redraw of the canvas and a new Labels layer cost here
    (under Xvfb the canvas is drawn by software OpenGL on the same cores)."""
    def redraws():
        for _ in range(5):
            viewer.camera.zoom *= 1.01
            settle(0.1)

    table.measure("napari: 5 canvas redraws (zoom)", redraws)
    table.measure("napari: add a 1024 x 1024 Labels layer",
                  lambda: viewer.layers.remove(viewer.add_labels(np.zeros((1024, 1024), np.uint16))))


def segment_anything_jobs(viewer, table: Table, files: dict, image_name: str, stack_name: str):
    _, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    table.measure("SA: choose the image", lambda: w.set_image(image_name))
    table.measure("SA: load mobile_sam (file)",
                  lambda: w.set_model("mobile_sam", checkpoint=str(files["mobile_sam"]),
                                      device="cpu"))
    table.measure("SA: embedding 1024 x 1024 (mobile_sam)", lambda: w.compute_embedding())
    rng = np.random.default_rng(1)
    for i in range(3):
        point = rng.integers(200, 800, 2).tolist()
        table.measure(f"SA: click -> preview #{i + 1}", lambda: w.segment(points=[point]))
        table.measure(f"SA: commit #{i + 1}", lambda: (w.commit(), w.wait()))
    w.set_image(stack_name)
    w.set_model("tiny_sam", checkpoint=str(files["tiny_sam"]), device="cpu")
    viewer.dims.set_current_step(0, 12)
    w.segment(points=[[256, 256]])
    w.commit()
    panel = w.propagation  # random weights: never stop (score, area), go past empty slices
    panel.score_spin.setValue(0.0)
    panel.area_spin.setValue(panel.area_spin.maximum())
    panel.past_empty_check.setChecked(True)
    table.measure("SA: propagation through 24 x 512 x 512 (tiny)",
                  lambda: w.propagate(wait=True))
    w.close()


def segment_everything_jobs(viewer, table: Table, files: dict, image_name: str, stack_name: str):
    _, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    w.set_image(image_name)
    w.set_method("grid")
    w.set_model("tiny_sam", checkpoint=str(files["tiny_sam"]), device="cpu")
    w.set_params(points_per_side=16, **RANDOM_WEIGHTS)
    w.set_filters(**NO_FILTERS)
    table.measure("SE: grid 16 x 16, 1024 x 1024 (tiny, first run)", lambda: w.run(False))
    table.measure("SE: grid again (embedding cached)", lambda: w.run(False))
    table.measure("SE: filter change (min area 200)", lambda: (w.set_filters(min_area=200),
                                                                 w.wait()))
    w.set_filters(**NO_FILTERS)
    w.wait()
    table.measure("SE: commit 2D into Labels", lambda: (w.commit(False), w.wait()))

    w.set_method("object_aware", detector=str(files["detector"]))
    w.set_params(conf=0.0, max_det=200)
    table.measure("SE: object-aware, 1024 x 1024 (detector + tiny)", lambda: w.run(False))

    w.set_method("fastsam")
    w.set_model("fastsam_s", checkpoint=str(files["fastsam_s"]), device="cpu")
    w.model, w.model_choice = files["fastsam_model"], w.model_choice_wanted()
    w.set_params(conf=0.0)
    table.measure("SE: FastSAM-s, 1024 x 1024", lambda: w.run(False))
    table.measure("SE: commit FastSAM 2D", lambda: (w.commit(False), w.wait()))

    w.set_image(stack_name)
    w.set_method("grid")
    w.set_model("tiny_sam", checkpoint=str(files["tiny_sam"]), device="cpu")
    w.set_params(points_per_side=8, **RANDOM_WEIGHTS)
    table.measure("SE: grid 8 x 8, all 24 slices 512 x 512 (tiny)", lambda: w.run(True))
    table.measure("SE: filter change on the stack", lambda: (w.set_filters(min_area=100),
                                                               w.wait()))
    w.target_combo.setCurrentIndex(0)  # <new Labels layer>: the 2D one does not fit
    table.measure("SE: commit all 24 slices", lambda: (w.commit(True), w.wait()))
    w.writer.layer.undo()
    w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["sa", "se"], help="one dock only")
    parser.add_argument("--where", action="store_true",
                        help="sample the main thread's stack during gaps (diagnosis)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile of the main thread during each job's longest gap")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import napari
    import napari_segany

    folder = Path(tempfile.mkdtemp(prefix="bench_stalls_"))
    os.environ.setdefault("NAPARI_SEGANY_CACHE", str(folder / "cache"))
    parity = shared_dir() / "parity"
    files = {"tiny_sam": register_tiny_sam(folder), "mobile_sam": synth_file("mobile_sam", folder),
             "fastsam_s": parity / "fastsam_s" / "FastSAM-s.synth-seed0.pt",
             "detector": parity / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt"}
    files["fastsam_model"] = visible_fastsam(files["fastsam_s"])
    print(f"napari-segany from {Path(napari_segany.__file__).parent}")
    print(f"load average at start: {os.getloadavg()}")

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1366, 768)  # the laptop screen of issue 14
    viewer.add_image(cells(1024), name="cells 1024")
    viewer.add_image(np.stack([cells(512, seed=s) for s in range(24)]), name="stack 24 x 512")
    settle(1.0)
    table = Table(args.where, args.profile)
    print(f"{'job':<48} {'longest gap':>11} {'>50ms':>5}")
    baseline_jobs(viewer, table)
    if args.only in (None, "sa"):
        segment_anything_jobs(viewer, table, files, "cells 1024", "stack 24 x 512")
    if args.only in (None, "se"):
        segment_everything_jobs(viewer, table, files, "cells 1024", "stack 24 x 512")
    load = os.getloadavg()
    viewer.close()
    print(f"\nload average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} "
          f"(1, 5, 15 min); {args.threads} torch threads\n")
    print(table.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average_end": load, "rows": table.rows},
                                              indent=2))


if __name__ == "__main__":
    main()
