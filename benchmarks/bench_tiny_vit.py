"""Time the MobileSAM image encoder (TinyViT-5M) on one 1024 x 1024 image.

    PYTHONPATH=src python benchmarks/bench_tiny_vit.py [--runs 5] [--threads 2]
        [--path fast reference] [--no-onednn] [--passive]

Weights are synthesized (seeded, shaped like real ones; speed does not depend on them).
Prints, per path, the first (cold) call and min / median wall seconds and median CPU
seconds of the following runs, plus the load average: on a shared machine compare minima.

``--passive`` sets OMP_WAIT_POLICY=PASSIVE before torch starts: OpenMP threads then sleep
instead of spinning between kernels.  When other processes compete for the cores (load
above the thread count) spinning makes 2-thread runs several times slower (measured here
under load ~7 on 2 cores: fast path 5.7 s -> 1.15 s min); on an idle machine it costs a
little wake-up latency per kernel.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def synthesize_(model, seed: int = 0) -> None:
    """Seeded weights with realistic scales (non-zero attention biases, BN statistics)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(1 + 0.1 * torch.rand(t.shape, generator=g))
            elif t.ndim == 1 and name.endswith("weight"):
                t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
            elif t.ndim <= 1:
                t.copy_(0.02 * torch.randn(t.shape, generator=g))
            else:
                t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)


def time_encoder(encoder, x, runs: int) -> dict:
    """Cold first call, then ``runs`` timed calls under inference_mode."""
    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        encoder(x)
        cold = time.perf_counter() - t0
        walls, cpus = [], []
        for _ in range(runs):
            c0, t0 = time.process_time(), time.perf_counter()
            encoder(x)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return {"cold_s": cold, "wall_s_min": min(walls), "wall_s_median": statistics.median(walls),
            "cpu_s_median": statistics.median(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--path", nargs="+", default=["fast", "reference"],
                        choices=["fast", "reference"])
    parser.add_argument("--no-onednn", action="store_true",
                        help="fast path with public ops only (F.conv2d / F.linear)")
    parser.add_argument("--passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE (set before torch is imported)")
    args = parser.parse_args()
    if args.passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

    import torch

    from napari_segany.models import tiny_vit

    torch.set_num_threads(args.threads)
    if args.no_onednn:
        tiny_vit.fast_ops.ONEDNN_ENABLED = False
    encoder = tiny_vit.TinyViT(img_size=args.image_size).eval()
    synthesize_(encoder)
    x = torch.randn(1, 3, args.image_size, args.image_size,
                    generator=torch.Generator().manual_seed(0))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cpu {torch.backends.cpu.get_cpu_capability()}, "
          f"oneDNN fusion {tiny_vit.onednn_fusion_available()}, "
          f"image {args.image_size}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}, "
          f"loadavg {os.getloadavg()[0]:.2f}")
    for path in args.path:
        encoder.fast_inference = path == "fast"
        r = time_encoder(encoder, x, args.runs)
        print(f"{path:9s} cold {r['cold_s']:.3f} s | wall min {r['wall_s_min']:.3f} s, "
              f"median {r['wall_s_median']:.3f} s | cpu median {r['cpu_s_median']:.3f} s "
              f"({args.runs} runs)")
    print(f"loadavg after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
