"""What ``napari-segany everything`` does once its arguments are parsed (see everything_cmd).

Everything that can be checked before the models load is (parameters, files, the output
location).  While running, an image that cannot be read or segmented (corrupt, NaN, odd
shape) is reported and skipped, the others go on; the exit status is then 2.  Outputs are
written atomically as each image finishes.  Planes larger than the tiling threshold run
tile by tile (``TilingSettings``: ``--tile``, ``--halo``, ``--tile-threshold``, ``--no-tile``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.errors import ImageError, SegAnyError
from ..engine.progress import STEPS_PER_PART, Progress
from .everything_options import EverythingOptions
from .loading import load_checked_models

log = logging.getLogger(__name__)


@dataclass
class Task:
    source: Path
    output: Path


@dataclass
class EverythingRun:
    tasks: list[Task]
    options: EverythingOptions
    skipped: list[Path] = field(default_factory=list)  # files of input folders that are not images
    written: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "EverythingRun":
        options = EverythingOptions.from_args(args)
        skipped: list[Path] = []
        tasks = plan_tasks(args.inputs, args.output, skipped)
        tasks = check_existing(tasks, args.overwrite, args.skip_existing)
        check_writable(tasks, args.output)
        return cls(tasks, options, skipped)

    # ------------------------------------------------------------------ running
    def run(self, quiet: bool = False, stream=None) -> int:
        from tqdm import tqdm

        if self.skipped:
            names = ", ".join(p.name for p in self.skipped[:5]) + (", ..." if len(self.skipped) > 5 else "")
            print(f"skipped {len(self.skipped)} file(s) that are not images: {names}", file=stream)
        if not self.tasks:
            log.warning("every output exists already (--skip-existing): nothing to do")
            return 0
        model, detector = self.load_models()
        bar = tqdm(total=len(self.tasks) * STEPS_PER_PART, file=stream, disable=quiet,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        try:
            for k, task in enumerate(self.tasks):
                try:
                    n_objects, how = self.run_one(k, task, model, detector, bar)
                except ImageError as exc:  # this image only: report it, go on with the others
                    self.failed.append(task.source)
                    more = " Skipped; going on with the others." if len(self.tasks) > 1 else ""
                    bar.write(f"error: {exc}{more}", file=stream)
                    continue
                bar.write(f"{task.source.name}: {n_objects} objects -> {task.output}{how}",
                          file=stream)
        finally:
            bar.close()
        return self.summary(stream)

    def summary(self, stream) -> int:
        """0 when every image was segmented; else 2, with a closing line when there were others
        (which were written)."""
        if not self.failed:
            return 0
        if len(self.tasks) > 1:
            print(f"error: {len(self.failed)} of {len(self.tasks)} image(s) could not be segmented "
              f"(see above); {len(self.written)} output(s) written.", file=stream)
        return 2

    def run_one(self, k: int, task: Task, model, detector, bar) -> tuple[int, str]:
        """Segment one file and write its labels: (objects written, " (tiled: ...)" or "")."""
        from ..engine.everything import iter_segment_stack
        from ..engine.images import plane_layout, read_image, write_labels
        from ..engine.images.contrast import stack_contrast
        from ..engine.progress import nested
        from ..engine.tiling import describe_tiles, model_input_size

        image = read_image(task.source)  # its errors name the file
        o = self.options
        try:
            layout = plane_layout(image.shape)
            planes = (image[index] for index in layout.indices())
            contrast = o.contrast or stack_contrast(image, layout.leading)
            grid = o.tiling.plan(image.shape[len(layout.leading):], model_input_size(model))
            job = iter_segment_stack(planes, layout.n_planes, model, o.method, detector,
                                     contrast, tiling=o.tiling, **o.params)
            bar.set_description(f"[{k + 1}/{len(self.tasks)}] {task.source.name}")
            results = yield_to_bar(nested(job, k, len(self.tasks)), bar)
        except ImageError as exc:
            raise ImageError(f"{task.source.name}: {exc}") from None
        del image  # the input may be large: free it before the labels are assembled
        kept = [o.filters.apply(r) for r in results]
        write_labels(task.output, stack_labels(kept, layout.leading))
        self.written.append(task.output)
        return sum(len(r) for r in kept), f" ({describe_tiles(grid)})" if grid else ""

    def load_models(self):
        """The model (and the detector), checked for the method: a file of another kind
        stops here, before any image is read."""
        return load_checked_models(self.options)


def stack_labels(results: list, leading: tuple[int, ...]) -> np.ndarray:
    """The painted labels of every plane as one (*leading, H, W) array of the smallest
    unsigned type holding the ids (each plane is painted, then narrowed, one at a time)."""
    from ..engine.everything.result import paint_labels
    from ..engine.images.io import labels_dtype

    shape = results[0].image_shape
    out = np.empty((len(results), *shape), labels_dtype(max(len(r) for r in results)))
    for plane, result in zip(out, results):  # ids are 1..len(result): they fit
        plane[...] = paint_labels([r.mask for r in result.records], shape)
    return out.reshape(*leading, *shape)


def yield_to_bar(job, bar):
    """Drive a job, moving the tqdm bar to each Progress; returns the job's value."""
    while True:
        try:
            report: Progress = next(job)
        except StopIteration as stop:
            return stop.value
        bar.update(max(0, report.step - bar.n))
        if report.message:
            bar.set_postfix_str(report.message, refresh=False)


def plan_tasks(inputs: list[Path], output: Path, skipped: list | None = None) -> list[Task]:
    """Input files/folders -> (image, output TIFF) pairs; files of input folders that are not
    images are appended to ``skipped``."""
    from ..engine.images.io import IMAGE_SUFFIXES, TIFF_SUFFIXES
    from ..engine.images import list_images

    sources: list[Path] = []
    for item in inputs:
        item = item.expanduser()
        if item.is_dir():
            sources.extend(list_images(item, skipped))
        elif item.is_file():
            sources.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither an image file nor a folder.")
    output = output.expanduser()
    suffix = output.suffix.lower()
    if suffix in IMAGE_SUFFIXES and suffix not in TIFF_SUFFIXES and not output.is_dir():
        raise ImageError(f"Labels are written as TIFF: give -o a name ending in .tif, or a "
                         f"folder; not {output.name}.")
    names_a_file = suffix in TIFF_SUFFIXES and not output.is_dir()  # an existing folder stays one
    single_file = len(sources) == 1 and names_a_file
    if not single_file and names_a_file:
        raise ImageError(f"{len(sources)} images cannot all go to {output.name}: give a folder as -o.")
    if single_file:
        return [Task(sources[0], output)]
    names = [s.stem for s in sources]
    if len(set(names)) != len(names):
        raise ImageError("Two inputs share a file name (e.g. a.png and a.tif): their outputs "
                         "would collide; rename one or run them separately.")
    return [Task(s, output / f"{s.stem}_labels.tif") for s in sources]


def check_writable(tasks: list[Task], output: Path) -> None:
    """Refuse an output location that cannot be written, before any model loads."""
    from ..engine.images.io import unwritable_reason

    reason = unwritable_reason(tasks[0].output) if tasks else None
    if reason:
        raise SegAnyError(f"Cannot write the output -o {output}: {reason}. Choose another -o.")


def check_existing(tasks: list[Task], overwrite: bool, skip: bool) -> list[Task]:
    existing = [t for t in tasks if t.output.exists()]
    if not existing or overwrite:
        return tasks
    if skip:
        return [t for t in tasks if not t.output.exists()]
    raise SegAnyError(f"{existing[0].output} exists ({len(existing)} output(s) in all): pass "
                      "--overwrite to replace, or --skip-existing to resume.")
