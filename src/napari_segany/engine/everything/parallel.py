"""Decoder batches on a few threads at once, one intra-op thread each, results in order.

The mask decoder is many small operations on (prompts, 4096, 256) tensors.  Splitting each
operation over 2 intra-op threads synchronises the threads hundreds of times per batch;
running 2 batches side by side, each on 1 thread, does not.  mobile_sam's decoder on the
project's 2-core VM, per box prompt (batches of 4):

==================================  =================  ===========================
                                    dedicated 2 cores  shared VM, load average ~7
==================================  =================  ===========================
1 batch at a time, 1 thread          50 ms             128 ms
1 batch at a time, 2 threads         33 ms             814 ms
2 batches at a time, 1 thread each   24 ms             176 ms
==================================  =================  ===========================

Results do not depend on the number of workers (each batch is computed alone, in order).

Cancelling: with a ``cancel`` event, :func:`ordered_map` waits for results in slices of
:data:`CANCEL_POLL_S` and raises :class:`~..errors.Cancelled` once the event is set; the
batches themselves check it between their steps (:func:`check_cancel`), so the pool is
closed, its threads joined, within one step of a batch.
The pool threads get their one intra-op thread from :func:`..torch_state.limit_this_thread`,
which leaves the caller's thread and every thread started later as they were
(``torch.set_num_threads(1)`` would also lower the count threads started later inherit).
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import torch

from ..errors import Cancelled
from ..torch_state import limit_this_thread

T = TypeVar("T")
R = TypeVar("R")
MAX_WORKERS = 4  # each worker holds one batch's buffers (tens of MB): keep memory bounded
CANCEL_POLL_S = 0.05  # how often a wait for a batch looks at the cancel event


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise Cancelled when ``cancel`` is set (between two steps of a job)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("Everything mode was cancelled; nothing was written.")


def decode_workers(requested: int | None = None) -> int:
    """``requested``, or the caller's intra-op thread count capped at MAX_WORKERS."""
    if requested is not None:
        return max(1, int(requested))
    return max(1, min(MAX_WORKERS, torch.get_num_threads()))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                cancel: threading.Event | None = None) -> Iterator[R]:
    """``fn(item)`` for every item, ``workers`` at a time, yielded in the items' order.

    Closing the iterator early drops the items not started; those running finish (at most
    ``workers`` batches, or one step of them when ``fn`` checks ``cancel``).  Setting
    ``cancel`` raises Cancelled here within :data:`CANCEL_POLL_S`.  Exceptions of ``fn`` are
    raised here, in order.  With fewer items than ``workers`` (a grid of one batch, a few
    boxes) only that many run side by side, and a single item runs in the caller's thread
    with the caller's intra-op threads: a second pool thread would have nothing to do, and
    the one batch would compute on one core (mobile_sam, 64 prompts: 3.8 s instead of 2.2).
    """
    if hasattr(items, "__len__"):
        workers = min(workers, len(items))
    if workers <= 1:
        for item in items:
            check_cancel(cancel)
            yield fn(item)
        return
    items = iter(items)
    with ThreadPoolExecutor(workers, initializer=limit_this_thread, initargs=(1,),
                            thread_name_prefix="segany-decode") as pool:
        pending = deque(pool.submit(fn, item) for _, item in zip(range(workers), items))
        try:
            while pending:
                result = _result(pending.popleft(), cancel)
                for item in items:  # keep the pool full while the caller handles the result
                    pending.append(pool.submit(fn, item))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()


def _result(future, cancel: threading.Event | None):
    """The future's result; Cancelled as soon as ``cancel`` is set while waiting."""
    if cancel is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=CANCEL_POLL_S)
        except TimeoutError:
            check_cancel(cancel)
