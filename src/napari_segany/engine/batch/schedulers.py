"""Where a batch runs: ``--scheduler`` mapped onto dask.

============================  ==============================================================
``synchronous``               ``dask.compute(scheduler="synchronous")``: one task at a time
``threads`` (default)         ``dask.compute(scheduler="threads")`` on a pool of our own, one
                              thread per core, each with cores / threads torch threads
``processes``                 ``dask.compute(scheduler="processes")``: a pool of processes
``local:N``                   ``distributed.LocalCluster(n_workers=N, threads_per_worker=1,
                              processes=True)`` + ``Client``: cores / N torch threads each
``tcp://host:port``           ``Client(address)``: an existing dask cluster (its workers'
                              threads: cores / worker threads torch threads per task)
============================  ==============================================================

:meth:`Execution.iter_results` yields ``(key, result)`` as tasks finish (dask's local
callbacks, or the Client's futures with ``as_completed``), so the caller shows progress;
closing it cancels what has not started.  Torch threads are set in worker threads only
(:func:`.workers.prepare_thread`); the caller's stay as they are.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass

LOCAL_KINDS = ("synchronous", "threads", "processes")


@dataclass(frozen=True)
class SchedulerSpec:
    kind: str  # one of LOCAL_KINDS, "local" or "address"
    workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        return {"local": f"local:{self.workers}", "address": str(self.address)}.get(self.kind,
                                                                                     self.kind)


def parse_scheduler(text: str) -> SchedulerSpec:
    """``synchronous``, ``threads``, ``processes``, ``local:N``, ``tcp://host:port`` (or any
    ``scheme://`` dask accepts); ValueError saying the choices otherwise."""
    text = str(text).strip()
    if text in LOCAL_KINDS:
        return SchedulerSpec(text)
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if count.isdigit() and int(count) > 0:
            return SchedulerSpec("local", int(count))
    elif "://" in text:
        return SchedulerSpec("address", address=text)
    raise ValueError(f"Unknown scheduler {text!r}: use synchronous, threads, processes, local:N "
                     "(N worker processes) or the address of a dask scheduler (tcp://host:port).")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Execution:
    """A running scheduler (a context manager): ``dashboard`` (a link, or None),
    ``torch_threads`` (per task thread; None: leave them; "auto": each cluster worker's
    cores over its threads), ``workers`` (parallel tasks)."""

    def __init__(self, spec: SchedulerSpec):
        self.spec = spec
        self.client = self.cluster = self.pool = None
        self.dashboard = None
        n = cores()
        self.workers = {"synchronous": 1, "local": spec.workers}.get(spec.kind, n)
        self.torch_threads = None if spec.kind == "synchronous" else \
            "auto" if spec.kind == "address" else max(1, n // (self.workers or 1))

    def __enter__(self) -> "Execution":
        if self.spec.kind == "local":
            from distributed import Client, LocalCluster

            self.cluster = LocalCluster(n_workers=self.spec.workers, threads_per_worker=1,
                                        processes=True, dashboard_address=":0")
            self.client = Client(self.cluster)
        elif self.spec.kind == "address":
            from distributed import Client

            self.client = Client(self.spec.address)
            self.workers = sum(self.client.nthreads().values())
        if self.client is not None:
            self.dashboard = self.client.dashboard_link
        elif self.spec.kind == "threads":
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="segany-batch")
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def iter_results(self, nodes: dict):
        """Run the Delayed ``nodes`` (key -> Delayed); yield (key, result) as each finishes."""
        if not nodes:
            return
        if self.client is not None:
            yield from self._distributed(nodes)
        else:
            yield from self._local(nodes)

    def _distributed(self, nodes: dict):
        from distributed import as_completed

        futures = self.client.compute(list(nodes.values()), optimize_graph=False)
        try:
            for future, result in as_completed(futures, with_results=True):
                yield future.key, result
        finally:
            self.client.cancel(futures)

    def _local(self, nodes: dict):
        import dask
        from dask.callbacks import Callback

        events: queue.Queue = queue.Queue()
        wanted = set(nodes)
        callback = Callback(posttask=lambda key, result, *_: key in wanted and
                            events.put(("done", key, result)))
        options = {"pool": self.pool} if self.pool is not None else {"num_workers": self.workers}

        def compute():
            try:
                dask.compute(*nodes.values(), scheduler=self.spec.kind, optimize_graph=False,
                             callbacks=[callback._callback], **options)
                events.put(("end", None, None))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                events.put(("error", None, exc))

        thread = threading.Thread(target=compute, name="segany-batch-compute", daemon=True)
        thread.start()
        try:
            while True:
                kind, key, value = events.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield key, value
        finally:
            self._stopping = thread  # the caller sets the cancel flag, then joins it

    def join(self, timeout: float | None = None) -> None:
        """Wait for a local computation to wind down (after a cancel)."""
        thread = getattr(self, "_stopping", None)
        if thread is not None:
            thread.join(timeout)
