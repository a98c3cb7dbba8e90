"""Torch's process-wide settings, guarded: library code never changes them for other work.

The everything-mode decoder runs batches on pool threads of **one intra-op thread each**
(:mod:`.everything.parallel`).  ``torch.set_num_threads(1)`` in a pool thread would do that,
but it also rewrites ATen's *process-wide* count, which every thread started later copies:
after one everything run, a napari worker computing an embedding would get one thread
instead of all of them (measured: 0.67 s instead of 0.38 s per ``set_image``).

How torch 2.x decides a thread's intra-op count (ATen's OpenMP backend, see
``torch.__config__.parallel_info()``): ``at::get_num_threads()`` is the calling thread's
``omp_get_max_threads()``; the first time a thread asks (or runs a parallel op), ATen copies
the process-wide count into that thread's OpenMP setting (and MKL's thread-local one).
:func:`limit_this_thread` therefore

1. triggers that per-thread initialisation now (``torch.get_num_threads()``), so that it
   cannot overwrite what follows, then
2. sets only this thread's OpenMP count (``omp_set_num_threads`` of the OpenMP runtime torch
   uses) and MKL's thread-local count (``MKL_Set_Num_Threads_Local``), through ctypes,
3. and checks the result with ``torch.get_num_threads()``.

Where those symbols cannot be found (another build of torch), it falls back to
``torch.set_num_threads(n)`` followed by restoring the process-wide count from a short-lived
helper thread, under a lock; a thread starting within those microseconds could still copy
``n`` (the only remaining window, and only on such builds).

:func:`snapshot` lists the settings a job must leave as it found them (the test of every
public job compares two snapshots).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

_FALLBACK_LOCK = threading.Lock()


@dataclass(frozen=True)
class TorchState:
    """The process-wide torch settings library code must not change."""

    num_threads: int  # of the calling thread
    new_thread_num_threads: int  # what a thread started now gets
    num_interop_threads: int
    default_dtype: torch.dtype
    grad_enabled: bool
    inference_mode: bool
    deterministic: bool
    matmul_precision: str


def snapshot() -> TorchState:
    """The current settings (starts one short-lived thread to read what new threads get)."""
    return TorchState(torch.get_num_threads(), new_thread_num_threads(),
                      torch.get_num_interop_threads(), torch.get_default_dtype(),
                      torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                      torch.are_deterministic_algorithms_enabled(),
                      torch.get_float32_matmul_precision())


def new_thread_num_threads() -> int:
    """The intra-op thread count a thread started now gets (ATen's process-wide count)."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()),
                              name="segany-torch-probe")
    thread.start()
    thread.join()
    return seen[0]


def limit_this_thread(n: int = 1) -> None:
    """Give the calling thread ``n`` intra-op threads; other threads, and threads started
    later, keep theirs (see the module docstring).  For threads the caller owns (a pool)."""
    n = max(1, int(n))
    torch.get_num_threads()  # ATen's per-thread lazy initialisation happens now, not later
    if _set_per_thread(n):
        return
    with _FALLBACK_LOCK:
        process_wide = new_thread_num_threads()
        torch.set_num_threads(n)  # this thread, and (for a moment) the process-wide count
        restorer = threading.Thread(target=torch.set_num_threads, args=(process_wide,),
                                    name="segany-torch-restore")
        restorer.start()  # restores the process-wide count; this thread keeps n
        restorer.join()


@contextlib.contextmanager
def threads_of_this_thread(n: int):
    """The calling thread computes with ``n`` intra-op threads inside the block, then with
    its own count again: a pool thread (napari's workers) is lent, not changed for the next
    job it runs."""
    before = torch.get_num_threads()
    limit_this_thread(n)
    try:
        yield
    finally:
        limit_this_thread(before)


def _set_per_thread(n: int) -> bool:
    """Set this thread's OpenMP and MKL counts directly; True when torch now reports ``n``."""
    native = _native_setters()
    if native is None:
        return False
    omp_set, mkl_set_local = native
    omp_set(n)
    if mkl_set_local is not None:
        mkl_set_local(n)
    return torch.get_num_threads() == n


@functools.cache
def _native_setters():
    """(omp_set_num_threads, mkl_set_num_threads_local or None) of the runtimes torch uses,
    or None when torch has no OpenMP backend or the symbols cannot be found."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    libs = Path(torch.__file__).parent / "lib"
    omp = _symbol("omp_set_num_threads", sorted(libs.glob("lib*omp*.so*")) + [None])
    if omp is None:
        return None
    # MKL's by-value C entry point (the lower-case symbol is the Fortran one, by reference)
    mkl = _symbol("MKL_Set_Num_Threads_Local", sorted(libs.glob("libtorch_cpu.*")) + [None])
    if mkl is None and torch.backends.mkl.is_available():
        return None  # MKL would keep the process-wide count in this thread: use the fallback
    return omp, mkl


def _symbol(name: str, candidates: list):
    """``name`` from the first library that has it (None: the process's global namespace)."""
    for library in candidates:
        try:
            function = getattr(ctypes.CDLL(str(library) if library else None), name)
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
        return function
    return None
