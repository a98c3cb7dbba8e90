"""Every encoder family in float32 and bfloat16, side by side (1024 x 1024, 2 threads).

    python benchmarks/bench_precision.py [--models sam_vit_b mobile_sam ...] [--runs 5]
        [--warmup 2] [--threads 2] [--profile] [--json benchmarks/results/precision.json]

Per model: GFLOP of one encoder pass (``torch.utils.flop_counter``; SDPA counted as its two
matmuls; TinyViT counted on its reference path, same maths as the fast path), seconds
end to end (promptable models: ``Predictor.set_image``, i.e. preprocessing + encoder;
YOLO models: letterbox + network forward, without NMS / mask assembly), median of
``runs`` alternating fp32 / bf16 runs, GFLOP/s and % of the matmul peak of that dtype
measured in the same process (``bench_peak.py``), and the accuracy of bf16 against fp32
(``_precision_accuracy.py``: embedding or head-output relative error, mask IoUs).
``--profile`` prints the
``torch.profiler`` op table (self CPU time) of one pass per precision, and the ops of the
bf16 pass that take float32 tensors (to show there is no silent float32 fallback).
On a loaded machine, ``OMP_WAIT_POLICY=PASSIVE`` keeps spinning OpenMP threads from
multiplying the times (see ``bench_tiny_vit.py``); on a quiet one leave it unset.

Weights are the shared synthesized ones when ``../shared/parity`` exists, else random:
timing does not depend on them.  bf16 = ``models.precision.set_encoder_precision``.
The load average is printed before and after: on a shared machine, compare only figures
of one run.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import napari_segany as nsa
from _precision_accuracy import accuracy, accuracy_cells, accuracy_image
from bench_core import synthesized_weights
from bench_peak import cpu_summary, load_average, measure_peaks, peaks_markdown
from napari_segany.engine.detection import yolo as D
from napari_segany.engine.precision import resolve_precision
from napari_segany.models.precision import set_encoder_precision
from napari_segany.models.registry import PROMPTABLE

MODELS = ("sam_vit_b", "sam_vit_l", "sam_vit_h", "mobile_sam", "efficient_sam_vitt",
          "efficient_sam_vits", "fastsam_s", "fastsam_x", "mobilesamv2_objectaware")
#: Issue 19 targets on a 2-core AMX machine (seconds, bf16).
TARGETS = {"sam_vit_b": 0.8, "sam_vit_l": 2.5, "sam_vit_h": 5.0, "mobile_sam": 0.15,
           "efficient_sam_vits": 0.7, "fastsam_s": 0.15, "mobilesamv2_objectaware": 0.15}
#: Builder settings of the YOLO files when no synthesized state dict is available.
YOLO_CONFIG = {"fastsam_s": {"scale": "s"}, "fastsam_x": {"scale": "x"},
               "mobilesamv2_objectaware": {"scale": "s", "reg_max": 26, "has_proto": False}}


def _sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """q @ k^T and p @ v of the CPU flash kernel (FlopCounterMode has no CPU formula)."""
    b, h, lq, e = query_shape
    lk, ev = key_shape[-2], value_shape[-1]
    return 2 * b * h * lq * lk * (e + ev)


FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flop}


def build(name: str) -> torch.nn.Module:
    """An fp32 model prepared as ``load_model`` prepares one (synthesized or random weights)."""
    state = synthesized_weights(name)
    if state is not None:
        return nsa.load_model(name, checkpoint=state, device="cpu")
    spec = nsa.get_spec(name)
    torch.manual_seed(0)
    model = spec.build(**YOLO_CONFIG.get(name, {})).float().eval()
    if callable(getattr(model, "prepare_for_inference", None)):
        model.prepare_for_inference()
    model.spec, model.checkpoint_path = spec, "random weights"
    return model


def end_to_end(model, image: np.ndarray):
    """A no-argument callable: set_image (promptable) or letterbox + forward (YOLO)."""
    if model.spec.task == PROMPTABLE:
        predictor = nsa.Predictor(model)
        return lambda: predictor.set_image(image)
    order, masks = D.official_channel_order(model), model.spec.task != "detector"
    return lambda: D.run_network(model, D.model_input(image, 1024, order)[0], masks=masks)


def count_gflop(model, image: np.ndarray) -> float:
    """GFLOP of one encoder pass (promptable: ``encode``; YOLO: the forward)."""
    encoder = getattr(model, "image_encoder", None)
    reference = encoder is not None and hasattr(encoder, "fast_inference")
    if reference:  # TinyViT: the fast path's oneDNN ops are invisible to the counter
        encoder.fast_inference = False
    try:
        with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
            end_to_end(model, image)()
    finally:
        if reference:
            encoder.fast_inference = True
    return counter.get_total_flops() / 1e9


def alternate(runners: dict, runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Warm up every runner ``warmup`` times, then time them in turn ``runs`` times (s)."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in runners}
    for _ in range(runs):
        for key, fn in runners.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return times


def profile_table(fn, rows: int = 15) -> str:
    """torch.profiler op table (self CPU time) of one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def float32_ops(fn, rows: int = 6) -> str:
    """Ops of one call of ``fn`` that take float32 tensors, by total time: in bf16 these
    must be only the designed ones (LayerNorm's float32 affine parameters, the boundary
    casts, positional tables, YOLO's box decoding), never a silent fallback."""
    from collections import defaultdict

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    per_op = defaultdict(float)
    for event in prof.profiler.kineto_results.events():
        dtypes = [d for d in event.dtypes() if d]
        if "float" in dtypes and event.name().startswith("aten::"):
            per_op[event.name()] += event.duration_ns() / 1e6
    lines = []
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:rows]:
        lines.append(f"  {name}: {ms:.1f} ms (incl. children)")
    return "\n".join(lines) or "  none"


def bench_model(name: str, image: np.ndarray, runs: int, warmup: int, peaks: dict,
                profile: bool) -> dict:
    fp32 = build(name)
    bf16 = set_encoder_precision(copy.deepcopy(fp32), "bf16")
    runners = {"fp32": end_to_end(fp32, image), "bf16": end_to_end(bf16, image)}
    gflop = count_gflop(fp32, image)
    times = alternate(runners, runs, warmup)
    row = {"model": name, "gflop": gflop, "target_s": TARGETS.get(name)}
    for key, seconds in times.items():
        median = statistics.median(seconds)
        row[key] = {"s": median, "min_s": min(seconds), "gflops": gflop / median,
                    "pct_peak": 100 * gflop / median / peaks[key]["peak"]}
    row["accuracy"] = accuracy(fp32, bf16, accuracy_image())
    if profile:
        row["profile"] = {key: profile_table(fn) for key, fn in runners.items()}
        row["bf16_float32_ops"] = float32_ops(runners["bf16"])
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| model | GFLOP | fp32 s | fp32 GFLOP/s | fp32 % peak | bf16 s | bf16 GFLOP/s "
            "| bf16 % peak | bf16 speed-up | target s (AMX) | bf16 rel. error "
            "| bf16 mask IoU median / min |")
    lines = [head, "|---|" + "---:|" * 11]
    for r in rows:
        a, b = r["fp32"], r["bf16"]
        target = f"{r['target_s']:.2f}" if r["target_s"] else ""
        lines.append(
            f"| {r['model']} | {r['gflop']:.0f} | {a['s']:.3f} | {a['gflops']:.0f} | "
            f"{a['pct_peak']:.0f} | {b['s']:.3f} | {b['gflops']:.0f} | {b['pct_peak']:.0f} | "
            f"{a['s'] / b['s']:.2f}x | {target} | {accuracy_cells(r)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (>= 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print torch.profiler op tables")
    parser.add_argument("--json", type=Path, help="also write the figures (and tables) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start_load = load_average()
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {args.threads} threads; "
          f"auto precision here: {resolve_precision('auto', 'cpu')}; load average: {start_load}")
    peaks = measure_peaks()
    print(peaks_markdown(peaks) + "\n")
    image = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    rows = []
    for name in args.models:
        rows.append(bench_model(name, image, args.runs, max(1, args.warmup), peaks,
                                args.profile))
        r = rows[-1]
        print(f"{name}: {r['gflop']:.0f} GFLOP, fp32 {r['fp32']['s']:.3f} s, "
              f"bf16 {r['bf16']['s']:.3f} s (load {load_average()})", flush=True)
        for key, table in r.get("profile", {}).items():
            print(f"\n### {name} {key}: top ops by self CPU time\n{table}")
        if "bf16_float32_ops" in r:
            print(f"\n### {name} bf16: ops with float32 tensor inputs\n{r['bf16_float32_ops']}")
        gc.collect()
    print(f"\n{args.runs} alternating runs each, median; load average before {start_load}, "
          f"after {load_average()}\n")
    print(markdown(rows))
    if args.json:
        report = {"cpu": cpu_summary(), "torch": torch.__version__, "threads": args.threads,
                  "load_average": [start_load, load_average()], "peaks": peaks, "rows": rows}
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
