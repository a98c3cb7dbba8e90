"""What a batch did, per input: the summary table the command line prints at the end."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageReport:
    """One input: ``status`` "done", "failed" or "planned" (dry run); ``planes``; ``objects``
    (rows of objects.csv; embeddings computed for embed); ``error`` (what failed, and where);
    ``output`` (its .ome.zarr, or the store)."""

    input: str
    status: str
    planes: int = 0
    objects: int = 0
    error: str = ""
    output: str = ""


@dataclass
class BatchSummary:
    """The result of :func:`napari_segany.batch`: ``images`` (one report per input),
    ``computed`` (tasks run now), ``reused`` (tasks finished by an earlier run, skipped),
    ``tasks`` (the dry run's list: (key, "todo" or "done")), ``objects_csv`` (its path, or
    None), ``scheduler`` and ``dashboard`` (a link, or None)."""

    images: list[ImageReport] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    tasks: list[tuple[str, str]] = field(default_factory=list)
    objects_csv: str | None = None
    scheduler: str = ""
    dashboard: str | None = None
    skipped_files: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ImageReport]:
        return [r for r in self.images if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when every input was processed."""
        return not self.failed

    def table(self) -> str:
        """A plain-text table: input, status, planes, objects, error."""
        rows = [("input", "status", "planes", "objects", "error")]
        rows += [(r.input, r.status, str(r.planes), str(r.objects), r.error) for r in self.images]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4]
                 for row in rows]
        return "\n".join(line.rstrip() for line in lines)

    def closing_line(self) -> str:
        done = sum(r.status == "done" for r in self.images)
        text = (f"{done} of {len(self.images)} input(s) done; {self.computed} task(s) computed, "
                f"{self.reused} reused from an earlier run")
        if self.failed:
            text += f"; {len(self.failed)} failed (run the same command again to retry them)"
        return text + "."
