"""Encoding an image with progress reports and cancellation (for GUI workers and the CLI).

The encoder is one ``forward`` call, so progress comes from forward hooks on its repeated
blocks (SAM's ``blocks``, TinyViT's ``layers``...).  :func:`iter_encode` runs the encoder in a
helper thread and yields a :class:`~.progress.Progress` after each block; closing the generator (a napari
worker's ``quit()``) sets the cancel flag, which a pre-hook turns into :class:`Cancelled`
before the next block, so a cancel takes effect within one block.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..errors import Cancelled
from ..progress import Progress, run


def encoder_steps(model: nn.Module) -> list[nn.Module]:
    """The modules whose completion marks progress: the outermost repeated blocks."""
    encoder = getattr(model, "image_encoder", model)
    steps: list[nn.Module] = []
    inside: set[int] = set()
    for module in encoder.modules():
        if id(module) in inside:
            continue
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            steps.extend(module)
            inside.update(id(m) for m in module.modules())
    return steps or [encoder]


def iter_encode(predictor, rgb: np.ndarray, cancel: threading.Event | None = None
                ) -> Iterator[Progress]:
    """Generator yielding a Progress per encoder block while ``predictor.encode(rgb)`` runs.

    Its return value (``StopIteration.value``, a napari worker's ``returned``) is the
    (1, C, h, w) embedding.  Errors of the encoder are re-raised here; a cancel raises
    :class:`Cancelled`.
    """
    cancel = cancel or threading.Event()
    steps = encoder_steps(predictor.model)
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict = {}
    job_thread: list[int] = []  # hooks are global to the module: only this job's thread counts

    def before_block(*_):
        if threading.get_ident() in job_thread and cancel.is_set():
            raise Cancelled("The embedding was cancelled.")

    def after_block(*_):
        if threading.get_ident() in job_thread:
            outcome["done"] = outcome.get("done", 0) + 1
            reports.put(Progress(outcome["done"], len(steps), "image encoder"))

    handles = [m.register_forward_pre_hook(before_block) for m in steps]
    handles += [m.register_forward_hook(after_block) for m in steps]

    def run():
        job_thread.append(threading.get_ident())
        try:
            outcome["features"] = predictor.encode(rgb)
        except BaseException as exc:  # handed to the generator, which re-raises it
            outcome["error"] = exc
        finally:
            for handle in handles:
                handle.remove()
            reports.put(None)

    thread = threading.Thread(target=run, name="segany-encode", daemon=True)
    thread.start()
    try:
        while (report := reports.get()) is not None:
            yield report
    finally:
        if "features" not in outcome and "error" not in outcome:
            cancel.set()  # closed early (worker aborted): stop the helper at the next block
    if "error" in outcome:
        raise outcome["error"]
    return outcome["features"]


def encode_blocking(predictor, rgb: np.ndarray, callback=None) -> torch.Tensor:
    """Run :func:`iter_encode` to the end (scripts, the CLI); see ``progress.run``."""
    return run(iter_encode(predictor, rgb), callback)
