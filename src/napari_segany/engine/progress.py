"""Progress reports of long engine jobs.

Long jobs are generators that ``yield Progress(...)`` between units of work and ``return``
their result, so that napari's ``thread_worker`` can show a progress bar and stop them
between two units (nothing is written until the generator returns).  :func:`run` drives
such a generator from plain Python; :func:`nested` runs one as a part of a larger job.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, TypeVar

from .errors import Cancelled

T = TypeVar("T")
Job = Generator["Progress", None, T]
STEPS_PER_PART = 1000  # resolution of a progress bar made of parts (see nested)


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


def run(job: Job[T], callback: Callable[[Progress], object] | None = None) -> T:
    """Run a job to its end; ``callback`` sees each Progress and may return False to cancel
    (then :class:`Cancelled` is raised and the job's partial work is discarded)."""
    try:
        while True:
            report = next(job)
            if callback is not None and callback(report) is False:
                job.close()
                raise Cancelled("cancelled by the caller; nothing was written")
    except StopIteration as stop:
        return stop.value


def nested(job: Job[T], part: int, n_parts: int, prefix: str = "") -> Job[T]:
    """Run ``job`` as part ``part`` (0-based) of ``n_parts`` equal parts of a larger job:
    its Progress reports are rescaled to the whole and prefixed; returns the job's value."""
    total = n_parts * STEPS_PER_PART
    while True:
        try:
            report = next(job)
        except StopIteration as stop:
            return stop.value
        step = part * STEPS_PER_PART + int(round(report.fraction * STEPS_PER_PART))
        message = f"{prefix}{report.message}" if prefix else report.message
        yield Progress(step, total, message)
