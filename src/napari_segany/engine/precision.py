"""Which precision an encoder should run in on this hardware: ``resolve_precision``.

"fp32" and "bf16" are honoured as given (bfloat16 runs on any CPU: faster with AMX or
AVX512-BF16, slower without).  "auto" picks bfloat16 only where the hardware runs it much
faster than float32, so it never picks a slower path:

* CPU: Linux with AMX-BF16 tiles (``amx_bf16`` and ``amx_tile`` in ``/proc/cpuinfo``;
  matmuls ~7x faster than float32 there, issue 19).  On AVX512-BF16 without AMX (AMD EPYC,
  measured: matmuls ~2.5x, SDPA attention no faster, whole encoders 1.0-2.6x) "auto" stays
  float32: bfloat16's rounding is only worth AMX's speed-up.  Other OSes: float32 (no
  cheap, reliable flag source).
* CUDA: devices with native bfloat16 (``torch.cuda.is_bf16_supported`` without emulation).
* anything else (MPS...): float32.

Imports only torch and the standard library.  The model side is
``napari_segany.models.precision.set_encoder_precision(model, resolved)``.
"""
from __future__ import annotations

import os
import platform

import torch

REQUESTS = ("fp32", "bf16", "auto")
CPUINFO = "/proc/cpuinfo"
PRECISION_ENV = "NAPARI_SEGANY_PRECISION"


def default_precision() -> str:
    """What the widgets and the command line start with: ``$NAPARI_SEGANY_PRECISION`` if set
    (e.g. "fp32" for bit-reproducible runs on any CPU), else "auto".  The Python API's
    ``load_model`` defaults to "fp32" (exact) instead."""
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if value not in REQUESTS:
        raise ValueError(f"${PRECISION_ENV} must be one of {', '.join(REQUESTS)}; got {value!r}.")
    return value


def resolve_precision(requested: str, device: torch.device | str | None = None) -> str:
    """"fp32" | "bf16" | "auto" for ``device`` (None: CPU) -> "fp32" | "bf16".

    Raises ValueError for any other request.
    """
    if requested not in REQUESTS:
        raise ValueError(f"precision must be one of {', '.join(REQUESTS)}; got {requested!r}.")
    if requested != "auto":
        return requested
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if kind == "cuda":
        return "bf16" if _cuda_has_native_bf16() else "fp32"
    return "fp32"


def cpu_has_fast_bf16() -> bool:
    """True on Linux CPUs with AMX-BF16 that this process may use for bfloat16 matmuls."""
    if platform.system() != "Linux":
        return False
    if not {"amx_bf16", "amx_tile"} <= cpu_flags():
        return False
    # Hint of a restricted process: every AMX CPU has AVX-512, so a lower ATen capability
    # means someone capped it (ATEN_CPU_CAPABILITY) or the build lacks those kernels.
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    # oneDNN runs the bf16 matmuls; a cap below AMX (e.g. ONEDNN_MAX_CPU_ISA=AVX512_CORE)
    # leaves only the slower AVX-512 kernels.
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    return not cap or cap == "ALL" or "AMX" in cap


def cpu_flags(path: str = CPUINFO) -> frozenset[str]:
    """The CPU feature flags of the first ``flags`` line of /proc/cpuinfo (empty if unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def _cuda_has_native_bf16() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch: no emulation argument (and no emulation)
        return bool(torch.cuda.is_bf16_supported())
