"""Running the decoder for the widget: one decode at a time, latest prompts win.

One decode + upsampling of the shown candidate costs 34 ms on two idle cores for
SAM/MobileSAM, and hundreds of ms on a loaded machine or while an embedding runs
(docs/benchmarks.md): too long for the GUI thread, so it runs in a worker.  Prompt edits
made meanwhile are kept (only the latest) and decoded when the running decode returns.
A result whose objects were cleared meanwhile (commit, discard, another slice or
embedding) is dropped: :meth:`DecodeQueue.invalidate` bumps a generation counter.
"""
from __future__ import annotations

from typing import Callable

from ...engine.errors import SegAnyError
from ..shared.workers import start_decode

#: The decoder's intra-op threads in its worker (None: torch's count).  A click also makes
#: napari redraw the new point while the decoder runs (Xvfb draws OpenGL in software, on the
#: same cores).  One thread, leaving a core to the redraw, measured slower on 2 cores
#: (bench_interactive.py compares both click by click: 116 vs 106 ms), so torch's count stays.
DECODE_THREADS = None


class DecodeQueue:
    def __init__(self, on_result: Callable, on_error: Callable[[Exception], None]):
        self.on_result, self.on_error = on_result, on_error
        self.in_worker = True  # False: decode on the GUI thread (the benchmark compares)
        self.threads: int | None = DECODE_THREADS  # in the worker; None: torch's count
        self.worker = None
        self._pending = None  # (session, prompts) that arrived during a decode
        self._generation = 0

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def submit(self, session, prompts) -> None:
        """Decode ``prompts`` with ``session`` now, or after the running decode."""
        if self.worker is not None:
            self._pending = (session, prompts)
            return
        generation = self._generation
        if not prompts or not self.in_worker:  # nothing to decode, or asked to block
            try:
                result = session.decode(prompts)
            except SegAnyError as exc:
                return self._failed(exc, generation)
            return self._done(session, result, generation)
        self.worker = start_decode(
            session, prompts, threads=self.threads,
            on_done=lambda result: self._done(session, result, generation),
            on_error=lambda exc: self._failed(exc, generation))

    def invalidate(self) -> None:
        """The objects were cleared: drop the decode in flight and the pending prompts."""
        self._generation += 1
        self._pending = None

    def _done(self, session, result, generation) -> None:
        self.worker = None
        if generation == self._generation:
            session.apply(result)
            self.on_result()
        self._next()

    def _failed(self, exc, generation) -> None:
        self.worker = None
        if generation == self._generation:
            self.on_error(exc)
        self._next()

    def _next(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self.submit(*pending)
