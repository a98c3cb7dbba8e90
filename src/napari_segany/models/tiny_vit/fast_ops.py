"""Fast-path primitives of TinyViT: a derived-tensor cache keyed on parameter versions,
oneDNN fused conv/linear kernels (with a public-op fallback), and strip/chunk runners."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------- derived-tensor cache
def _version_key(tensors: Sequence[Tensor]) -> tuple | None:
    """Identity + version of every source tensor, or None if one cannot be tracked.

    Inference tensors (parameters created under ``torch.inference_mode``) have no version
    counter; then nothing is cached and derived tensors are recomputed every call.
    """
    key = []
    for t in tensors:
        if t.is_inference():
            return None
        key.append((id(t), t.data_ptr(), t._version, t.dtype, t.device))
    return tuple(key)


class DerivedCacheMixin:
    """``self._derived(name, sources, compute)``: ``compute()`` cached per name until one of
    ``sources`` changes (the cache lives in ``__dict__``: not a buffer, not in state_dict)."""

    def _derived(self, name: str, sources: Sequence[Tensor], compute: Callable[[], object]):
        if torch.compiler.is_compiling():  # traced into the graph; no Python-side state
            return compute()
        cache = self.__dict__.setdefault("_derived_cache", {})
        key = _version_key(sources)
        hit = cache.get(name)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        with torch.no_grad():
            value = compute()
        if key is not None:
            cache[name] = (key, value)
        return value

    def __getstate__(self):
        """Pickling / deepcopy leave the cache behind (it is rebuilt on first use)."""
        state = self.__dict__.copy()
        state.pop("_derived_cache", None)
        return state


# ---------------------------------------------------------------- fast kernels
_MKLDNN = getattr(torch.ops, "mkldnn", None)
gelu_ = torch.ops.aten.gelu_  # in place: no new (possibly page-faulted) allocation


#: Set False (or the environment variable NAPARI_SEGANY_NO_ONEDNN=1) to make the fast path
#: use only public ops (``F.conv2d``/``F.linear``); tests use it to check that fallback.
ONEDNN_ENABLED = os.environ.get("NAPARI_SEGANY_NO_ONEDNN", "") in ("", "0")


#: Probe tolerance per dtype: float32 noise, or bfloat16 rounding of O(10) values.
_PROBE_ATOL = {torch.float32: 1e-5, torch.bfloat16: 0.25}


@functools.lru_cache(maxsize=None)
def _onednn_probe(dtype: torch.dtype = torch.float32) -> bool:
    """True if ``torch.ops.mkldnn`` fused conv/linear kernels exist for ``dtype`` and give
    right answers.

    They are private PyTorch ops (the ones Inductor's CPU backend emits) and are ~2x faster
    than ``F.linear`` (MKL sgemm runs its AVX2 code on AMD CPUs) and than ``F.conv2d`` for
    1x1 convolutions here; any failure means we silently use the public ops instead.
    """
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 8, 5, 6, generator=g).to(dtype).contiguous(
            memory_format=torch.channels_last)
        w = torch.randn(8, 1, 3, 3, generator=g).to(dtype)
        w1 = torch.randn(8, 8, 1, 1, generator=g).to(dtype)
        b = torch.randn(8, generator=g).to(dtype)
        atol = _PROBE_ATOL[dtype]
        with torch.no_grad():
            conv = _MKLDNN._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 8,
                                                  "gelu", [], "none")
            conv_add = _MKLDNN._convolution_pointwise.binary(
                x, x, w1, b, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None)
            t = x.permute(0, 2, 3, 1).reshape(-1, 8)
            lin = _MKLDNN._linear_pointwise(t, w1.flatten(1), b, "gelu", [], "none")
            lin_add = _MKLDNN._linear_pointwise.binary(t, t, w1.flatten(1), b, "add")
            ok = (
                torch.allclose(conv, F.gelu(F.conv2d(x, w, b, padding=1, groups=8)), atol=atol)
                and torch.allclose(conv_add, F.conv2d(x, w1, b) + x, atol=atol)
                and torch.allclose(lin, F.gelu(F.linear(t, w1.flatten(1), b)), atol=atol)
                and torch.allclose(lin_add, F.linear(t, w1.flatten(1), b) + t, atol=atol)
                and all(y.dtype == dtype for y in (conv, conv_add, lin, lin_add))
            )
        return bool(ok)
    except Exception:  # missing op, unsupported CPU/build: fall back to public ops
        return False


def onednn_fusion_available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether the fast path uses oneDNN fused kernels in this process (CPU, ``dtype``:
    float32 or bfloat16)."""
    return ONEDNN_ENABLED and dtype in _PROBE_ATOL and _onednn_probe(dtype)


def _use_onednn(x: Tensor) -> bool:
    return x.device.type == "cpu" and onednn_fusion_available(x.dtype)


def fast_linear(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: bool = False,
            residual: Tensor | None = None) -> Tensor:
    """``gelu(x @ weight.T + bias)`` or ``x @ weight.T + bias + residual`` on the last axis.

    x: (..., K) contiguous; weight: (N, K); residual: (..., N). Returns (..., N).
    """
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    if _use_onednn(x):
        if residual is not None:
            y = _MKLDNN._linear_pointwise.binary(
                x2, residual.reshape(-1, weight.shape[0]), weight, bias, "add")
        else:
            y = _MKLDNN._linear_pointwise(x2, weight, bias, "gelu" if gelu else "none", [],
                                          "none" if gelu else "")
    else:
        y = F.linear(x2, weight, bias)
        if residual is not None:
            y += residual.reshape(y.shape)
        elif gelu:
            gelu_(y)
    return y.view(*lead, weight.shape[0])


def fast_conv(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int],
          padding: Sequence[int], groups: int, gelu: bool = False,
          residual: Tensor | None = None) -> Tensor:
    """``gelu(conv2d(x))`` or ``conv2d(x) + residual``; x (B, C, H, W), best channels-last.

    The output keeps x's memory format (channels-last in, channels-last out).
    """
    if _use_onednn(x):
        args = (weight, bias, list(padding), list(stride), [1, 1], groups)
        if residual is not None:
            return _MKLDNN._convolution_pointwise.binary(x, residual, *args, "add", None, None,
                                                         [], None)
        return _MKLDNN._convolution_pointwise(x, *args, "gelu" if gelu else "none", [],
                                              "none" if gelu else None)
    y = F.conv2d(x, weight, bias, stride, padding, 1, groups)
    if residual is not None:
        y += residual
    elif gelu:
        gelu_(y)
    return y


#: Largest intermediate activation of one strip in the convolution stages (bytes).
#: ~4 MB keeps a strip in the L2/L3 caches and below glibc's mmap threshold, so strip
#: buffers are recycled instead of being freshly page-faulted for every tensor.
STRIP_BYTES = 4 << 20


def _strip_rows(x: Tensor, width: int, channels: int, total: int) -> int:
    """Rows per strip so that a (B, channels, rows, width) slab of x's dtype ~ STRIP_BYTES.

    Only on CPU: on a GPU, strips would just multiply kernel launches.
    """
    if x.device.type != "cpu":
        return total
    slab_row = x.element_size() * x.shape[0] * width * channels
    return max(1, min(total, STRIP_BYTES // max(1, slab_row)))


#: Size of the per-chunk activations of the MLP (4C hidden) and of the attention matrices
#: of a group of windows: small enough to stay in cache, large enough to keep the number
#: of kernel calls (each a fork/join of the thread pool) in the hundreds.
CHUNK_BYTES = 4 << 20


def chunk_len(x: Tensor, per_item: int, total: int) -> int:
    """Items per chunk so that chunk * per_item values of x's dtype ~ CHUNK_BYTES (CPU only)."""
    if x.device.type != "cpu":
        return total
    return max(1, min(total, CHUNK_BYTES // (x.element_size() * per_item)))


class ConvStep:
    """One convolution of a strip pipeline: folded weights + geometry + fused GELU."""

    __slots__ = ("weight", "bias", "k", "stride", "pad", "groups", "gelu")

    def __init__(self, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d, gelu: bool):
        if tuple(conv.dilation) != (1, 1):
            raise NotImplementedError("strip pipelines assume dilation 1")
        self.weight, self.bias, self.gelu = weight, bias, gelu
        self.k, self.stride, self.pad = conv.kernel_size, conv.stride, conv.padding
        self.groups = conv.groups

    def out_rows(self, rows: int) -> int:
        return (rows + 2 * self.pad[0] - self.k[0]) // self.stride[0] + 1


def _chain_rows(x: Tensor, steps: Sequence[ConvStep], r0: int, r1: int) -> Tensor:
    """Rows [r0, r1) of ``steps[-1](... steps[0](x))`` computed from the needed rows only.

    x: (B, C, H, W) channels-last (the full input).  Each step's zero padding along H is
    reproduced exactly: halo rows inside the image are recomputed, rows outside it are
    zeros (``F.pad``, only for strips touching the top or bottom border).
    Returns (B, C_out, r1 - r0, W_out).
    """
    if not steps:
        return x[:, :, r0:r1]
    *prev, step = steps
    rows_in = x.shape[2]
    for s in prev:
        rows_in = s.out_rows(rows_in)
    lo = r0 * step.stride[0] - step.pad[0]
    hi = (r1 - 1) * step.stride[0] - step.pad[0] + step.k[0]
    c0, c1 = max(lo, 0), min(hi, rows_in)
    inp = _chain_rows(x, prev, c0, c1)
    if c0 - lo or hi - c1:
        inp = F.pad(inp, (0, 0, c0 - lo, hi - c1))
    return fast_conv(inp, step.weight, step.bias, step.stride, (0, step.pad[1]), step.groups,
                 gelu=step.gelu)


def run_strips(x: Tensor, steps: Sequence[ConvStep], out_channels: int,
                finish: Callable[[Tensor, int, int], Tensor] | None = None) -> Tensor:
    """Apply a conv pipeline strip by strip into one channels-last output.

    x: (B, C, H, W).  finish(strip, r0, r1) may post-process each output strip (residual).
    Returns (B, out_channels, H_out, W_out) channels-last.
    """
    b, _, h, w = x.shape
    h_out, w_out = h, w
    widest = x.shape[1]
    for s in steps:
        h_out = s.out_rows(h_out)
        w_out = (w_out + 2 * s.pad[1] - s.k[1]) // s.stride[1] + 1
        widest = max(widest, s.weight.shape[0])
    # the first steps run at the input resolution: budget for the widest slab there
    rows = _strip_rows(x, w, widest, h_out)
    out = torch.empty((b, out_channels, h_out, w_out), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    for r0 in range(0, h_out, rows):
        r1 = min(r0 + rows, h_out)
        y = _chain_rows(x, steps, r0, r1)
        if finish is not None:
            y = finish(y, r0, r1)
        out[:, :, r0:r1] = y
    return out


# ---------------------------------------------------------------- building blocks
