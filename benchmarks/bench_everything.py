"""Everything mode on one 1024 x 1024 image: wall time, prompts decoded and peak memory.

    PYTHONPATH=src python benchmarks/bench_everything.py [--cases grid object_aware ...]

Every case runs in its own process (``--one CASE``), so its peak RSS (``VmHWM`` of
/proc/self/status) is its own; a case times ``segment_everything`` end to end (encoder,
detector, decoder, upsampling, records; not the model load) once, with 2 torch threads.

* encoder / decoder: mobile_sam for grid and object_aware (random weights, built as
  ``load_model`` builds it: cost does not depend on the values);
* detector / FastSAM: the real-format synthesized files of ../shared/parity (same
  architecture and cost as the official scale-s weights).

Random weights decide *how many* masks pass score filters, so the grid is run twice: with
SAM's default filters (random predicted IoUs are low: almost nothing is upsampled) and with
the filters off (all 3,072 candidates upsampled: the upper bound of a real image).  The
random detector saturates at ``max_det`` = 300 boxes (every score is ~0.51 > conf); a real
detector on a microscopy field returns one box per object, hence the ``max_det=64`` case.

``--precision fp32 bf16`` loads the model (and the detector / FastSAM) in each precision in
one process and times them alternately, ``--repeats`` times (median wall time per precision):
a bf16 model runs its encoder and, in grid and object-aware, its batched mask decoder in
bfloat16 (``engine/everything/batch_network.py``).  ``--size 512`` for a quicker run.

Prints a markdown table for docs/benchmarks.md and writes benchmarks/results/everything.json
(``--out``).  The 1-minute load average is printed: on a shared machine it inflates wall
times.  ``chrt -r 10`` in front (root) gives the processes the cores as if the machine were
idle; docs/benchmarks.md says which figures were taken so.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _models import random_mobile_sam

HERE = Path(__file__).resolve().parent
PARITY = Path(os.environ.get("NAPARI_SEGANY_SHARED", HERE.parents[1] / "shared")) / "parity"
DETECTOR = PARITY / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt"
FASTSAM = PARITY / "fastsam_s" / "FastSAM-s.synth-seed0.pt"
OFF = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)

#: case -> (method, parameters, what it shows)
CASES = {
    "grid": ("grid", {}, "SAM grid 32x32, SAM's filters (0.88 / 0.95)"),
    "grid_serial": ("grid", {"decode_workers": 1},
                    "SAM grid 32x32, one batch at a time on all threads (before parallel.py)"),
    "grid_unfiltered": ("grid", OFF, "SAM grid 32x32, filters off (every candidate upsampled)"),
    "object_aware": ("object_aware", {}, "object-aware, MobileSAMv2 defaults (max_det 300)"),
    "object_aware_b320": ("object_aware", {"points_per_batch": 320, "decode_workers": 1},
                          "object-aware, 320 boxes in one batch (MobileSAMv2's way)"),
    "object_aware_64": ("object_aware", {"max_det": 64}, "object-aware, max_det 64"),
    "fastsam": ("fastsam", {}, "FastSAM-s, one pass"),
}


def test_image(size: int = 1024) -> np.ndarray:
    """scikit-image's ``cell`` (phase contrast) mirrored to size x size, uint8."""
    from skimage import data

    cell = data.cell()
    reps = (-(-size // cell.shape[0]), -(-size // cell.shape[1]))
    tiled = np.block([[cell if (i + j) % 2 == 0 else cell[:, ::-1] for j in range(reps[1])]
                      for i in range(reps[0])])
    return np.ascontiguousarray(tiled[:size, :size])


def memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_models(method: str, precision: str) -> tuple:
    """(model, detector or None) of ``method`` in ``precision``."""
    import copy

    import napari_segany as nsa
    from napari_segany.models.precision import set_encoder_precision

    if method == "fastsam":
        return nsa.load_model("fastsam_s", checkpoint=FASTSAM, device="cpu", precision=precision), None
    model = set_encoder_precision(copy.deepcopy(random_mobile_sam()), precision)
    detector = None
    if method == "object_aware":
        detector = nsa.load_model("mobilesamv2_objectaware", checkpoint=DETECTOR, device="cpu",
                                  precision=precision)
    return model, detector


def run_case(name: str, threads: int, precisions=("fp32",), repeats: int = 1,
             size: int = 1024) -> list[dict]:
    """One case in this process: load each precision, then time segment_everything
    ``repeats`` times per precision, the precisions alternating (same load for each)."""
    import torch

    import napari_segany as nsa

    torch.set_num_threads(threads)
    method, params, _ = CASES[name]
    image = test_image(size)
    loaded = {p: load_models(method, p) for p in precisions}
    rss_loaded = memory_mb("VmRSS")
    times = {p: [] for p in precisions}
    for _ in range(repeats):
        for precision, (model, detector) in loaded.items():
            reports = []
            wall, cpu = time.perf_counter(), time.process_time()
            result = nsa.segment_everything(image, model, method, detector=detector,
                                            callback=reports.append, **params)
            times[precision].append((time.perf_counter() - wall, time.process_time() - cpu,
                                     result.n_prompts, len(result), len(reports)))
    return [{"case": name, "method": method, "params": params, "threads": threads,
             "precision": p, "size": size, "wall_s_each": [round(t[0], 2) for t in runs],
             "wall_s": round(float(np.median([t[0] for t in runs])), 2),
             "cpu_s": round(float(np.median([t[1] for t in runs])), 2),
             "prompts_decoded": runs[-1][2], "masks": runs[-1][3], "progress_reports": runs[-1][4],
             "rss_after_load_mb": round(rss_loaded), "peak_rss_mb": round(memory_mb("VmHWM"))}
            for p, runs in times.items()]


def run_in_subprocess(name: str, args) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run([sys.executable, __file__, "--one", name, "--threads", str(args.threads),
                          "--precision", *args.precision, "--repeats", str(args.repeats),
                          "--size", str(args.size)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(f"case {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    grid = next((r["prompts_decoded"] for r in rows if r["case"] == "grid"), None)
    lines = ["| case | precision | wall s | CPU s | prompts decoded | fewer than grid | masks "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{grid / r['prompts_decoded']:.1f}x" if grid and r["prompts_decoded"] else "no decoder"
        lines.append(f"| {CASES[r['case']][2]} | {r['precision']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['prompts_decoded']} | {ratio} | {r['masks']} | "
                     f"{r['peak_rss_mb']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--label", default="", help="a note stored with the figures (e.g. chrt)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "everything.json")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
                        help="model precisions, timed alternately in one process per case")
    parser.add_argument("--repeats", type=int, default=1, help="runs per precision (median)")
    parser.add_argument("--size", type=int, default=1024, help="image side (default 1024)")
    parser.add_argument("--one", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.threads, args.precision, args.repeats, args.size)))
        return
    rows, loads = [], []
    for name in args.cases:
        loads.append(os.getloadavg()[0])
        for row in run_in_subprocess(name, args):
            rows.append({**row, "load_average_1min_before": round(loads[-1], 2)})
            print(f"{name}: {rows[-1]}", file=sys.stderr)
    loads.append(os.getloadavg()[0])
    print(table(rows))
    print(f"\n{args.size} x {args.size}; {args.threads} torch thread(s); median of "
          f"{args.repeats} run(s) per precision, alternating; load average (1 min) before each "
          f"case and at the end: {', '.join(f'{v:.1f}' for v in loads)}; {os.cpu_count()} CPUs")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                                    "threads": args.threads, "label": args.label,
                                    "load_average_1min": loads,
                                    "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
