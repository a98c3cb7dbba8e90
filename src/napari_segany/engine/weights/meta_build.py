"""Building a network on the meta device (no memory, no initialization) without sympy.

Under ``torch.device("meta")`` two of the initializers a network's ``__init__`` calls,
``Tensor.normal_`` (``nn.Embedding``, ``nn.init.normal_``) and ``torch.randn``, run torch's
Python reference implementations, whose checks import ``torch.fx.experimental.symbolic_shapes``
(arithmetic with a number, ``scale * torch.randn(...)``, even imports torch._dynamo) and with it
sympy: about 800 modules and 120,000 Python objects.  That cost 0.8 s at the first
large load, and for the rest of the session every full garbage collection of the process
walked those objects again (a collection holds the GIL, so the viewer stalls while it runs:
about 50 ms longer each time, docs/benchmarks.md).  On the meta device a random fill has
nothing to fill, so it is skipped here: a fill returns its tensor, a draw an empty tensor of
the same shape.  Every other call goes to the device context as usual.
"""
from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

_FILLS = {"normal_"}
_DRAWS = {"randn"}
#: Arithmetic of one tensor with a Python number (``scale * torch.randn(...)``): on the meta
#: device torch runs it through its Python references too, which import torch._dynamo.
_ARITHMETIC = {"mul", "__mul__", "__rmul__", "add", "__add__", "__radd__", "sub", "__sub__",
               "__rsub__", "div", "__truediv__", "__rtruediv__", "__pow__", "__neg__"}
_TRUE_DIVISION = {"div", "__truediv__", "__rtruediv__"}


class _SkipRandomFillsOnMeta(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _FILLS:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
            if _is_meta(target):  # nn.init.normal_ passes it by keyword
                return target
        if name in _DRAWS and kwargs.get("device") in (None, "meta", torch.device("meta")):
            kwargs = {k: v for k, v in kwargs.items() if k != "generator"}
            return torch.empty(*args, **kwargs)  # the device context puts it on meta
        if name in _ARITHMETIC and not kwargs:
            shaped = _meta_with_number(args, true_division=name in _TRUE_DIVISION)
            if shaped is not None:
                return shaped
        return func(*args, **kwargs)


def _is_meta(value) -> bool:
    return isinstance(value, torch.Tensor) and value.is_meta


def _meta_with_number(args, true_division: bool) -> torch.Tensor | None:
    """The empty result of elementwise arithmetic of one meta tensor with numbers (torch's
    type promotion; a true division of integers gives the default float type)."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    numbers = [a for a in args if not isinstance(a, torch.Tensor)]
    if len(tensors) != 1 or not tensors[0].is_meta:
        return None
    if not all(isinstance(n, (bool, int, float)) for n in numbers):
        return None
    tensor = tensors[0]
    dtype = torch.result_type(tensor, numbers[0]) if numbers else tensor.dtype
    if true_division and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return torch.empty(tensor.shape, dtype=dtype, device="meta")


@contextlib.contextmanager
def building_on_meta():
    """``with building_on_meta(): net = build(...)``: parameters and buffers on the meta
    device, for a network whose tensors then come from a file (``assign=True``)."""
    with torch.device("meta"), _SkipRandomFillsOnMeta():
        yield
