"""Matmul peak of this machine in float32 and bfloat16, and what the CPU offers.

    python benchmarks/bench_peak.py [--threads 2] [--runs 10]

Two shapes per dtype: a square 2048^3 matmul, and a ViT-B MLP Linear (4096 tokens x 768 ->
3072).  The *peak* of a dtype is the best GFLOP/s of the two (best run of ``runs``).
Importable: ``measure_peaks()`` lets the model benchmarks report "% of the peak" measured in
the same process, minutes apart, under the same load (``bench_precision.py`` does).
The load average is printed: on a shared machine, compare only figures of one run.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SHAPES = {"matmul 2048^3": (2048, 2048, 2048), "Linear 4096x768->3072": (4096, 768, 3072)}


def load_average() -> str:
    """``uptime``'s three load averages, or '?' where the OS has none."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def cpu_summary() -> str:
    """CPU model name and its bfloat16-relevant flags (Linux), e.g. for a table caption."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    have = [f for f in wanted if f in flags] or ["(flags unknown)"]
    return f"{name}; {', '.join(have)}"


def _gflops(m: int, k: int, n: int, dtype: torch.dtype, runs: int) -> float:
    """Best GFLOP/s of ``x (m, k) @ w.T (n, k)`` through F.linear (oneDNN / MKL)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=g).to(dtype)
    w = torch.randn(n, k, generator=g).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        F.linear(x, w)  # warm-up: primitive creation, weight reorders
        for _ in range(runs):
            start = time.perf_counter()
            F.linear(x, w)
            best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def measure_peaks(runs: int = 10) -> dict[str, dict[str, float]]:
    """{"fp32": {shape: GFLOP/s, ..., "peak": best}, "bf16": {...}} on the current threads."""
    out = {}
    for name, dtype in DTYPES.items():
        figures = {shape: _gflops(*dims, dtype, runs) for shape, dims in SHAPES.items()}
        figures["peak"] = max(figures.values())
        out[name] = figures
    return out


def peaks_markdown(peaks: dict[str, dict[str, float]]) -> str:
    """The peaks as a small markdown table (GFLOP/s)."""
    shapes = [s for s in next(iter(peaks.values())) if s != "peak"]
    lines = ["| dtype | " + " | ".join(shapes) + " | peak |",
             "|---|" + "---:|" * (len(shapes) + 1)]
    for name, figures in peaks.items():
        cells = " | ".join(f"{figures[s]:.0f}" for s in shapes)
        lines.append(f"| {name} | {cells} | {figures['peak']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_summary()}; torch {torch.__version__}, {args.threads} threads; "
          f"load average before: {load_average()}")
    peaks = measure_peaks(args.runs)
    print(peaks_markdown(peaks))
    ratio = peaks["bf16"]["peak"] / peaks["fp32"]["peak"]
    print(f"bf16 / fp32 peak: {ratio:.2f}x; load average after: {load_average()}")


if __name__ == "__main__":
    main()
