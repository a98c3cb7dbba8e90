"""What ``napari-segany everything`` does once its arguments are parsed (see everything_cmd).

Everything that can be checked before the models load is (parameters, files, the output
location).  While running, an image that cannot be read or segmented (corrupt, NaN, odd
shape) is reported and skipped, the others go on; the exit status is then 2.  Outputs are
written atomically as each image finishes.  Planes larger than the tiling threshold run
tile by tile (``TilingSettings``: ``--tile``, ``--halo``, ``--tile-threshold``, ``--no-tile``).
"""
from __future__ import annotations

import ast
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.errors import ImageError, SegAnyError
from ..engine.progress import STEPS_PER_PART, Progress
from .loading import given_file_error, load_for_command, missing_files, tiling_settings

log = logging.getLogger(__name__)


@dataclass
class Task:
    source: Path
    output: Path


@dataclass
class EverythingRun:
    tasks: list[Task]
    method: str
    model: str
    checkpoint: Path | None
    detector: Path | None
    device: str | None
    params: dict
    filters: object  # FilterSettings
    contrast: tuple[float, float] | None = None
    tiling: object = None  # TilingSettings (None: the defaults)
    skipped: list[Path] = field(default_factory=list)  # files of input folders that are not images
    written: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "EverythingRun":
        from ..engine.everything.methods import DEFAULT_MODEL, check_model_name, check_params
        from ..engine.everything.presets import NO_FILTERS, FilterSettings

        params = method_params(args)
        check_params(args.method, params)
        if args.method != "object_aware" and args.detector is not None:
            raise ValueError("--detector is for --method object_aware only.")
        filters = NO_FILTERS if args.no_filters else FilterSettings(
            min_area=args.min_area, max_area_fraction=_fraction_or_off(args.max_area_fraction),
            min_score=args.min_score, min_stability=args.min_stability,
            max_contained=args.max_contained)
        model = args.model or DEFAULT_MODEL[args.method]
        check_model_name(args.method, model)
        tiling = tiling_settings(args, model)
        missing = missing_files({"--checkpoint": args.checkpoint, "--detector": args.detector})
        if missing:
            raise ValueError(" ".join(missing))
        skipped: list[Path] = []
        tasks = plan_tasks(args.inputs, args.output, skipped)
        tasks = check_existing(tasks, args.overwrite, args.skip_existing)
        check_writable(tasks, args.output)
        return cls(tasks, args.method, model, args.checkpoint,
                   args.detector, args.device, params, filters,
                   tuple(args.contrast) if args.contrast else None, tiling, skipped)

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
        from ..engine.progress import nested
        from ..engine.tiling import TilingSettings, describe_tiles, model_input_size

        image = read_image(task.source)  # its errors name the file
        tiling = self.tiling or TilingSettings()
        try:
            layout = plane_layout(image.shape)
            planes = (image[index] for index in layout.indices())
            contrast = self.contrast or shared_contrast(image)
            grid = tiling.plan(image.shape[len(layout.leading):], model_input_size(model))
            job = iter_segment_stack(planes, layout.n_planes, model, self.method, detector,
                                     contrast, tiling=tiling, **self.params)
            bar.set_description(f"[{k + 1}/{len(self.tasks)}] {task.source.name}")
            results = yield_to_bar(nested(job, k, len(self.tasks)), bar)
        except ImageError as exc:
            raise ImageError(f"{task.source.name}: {exc}") from None
        del image  # the input may be large: free it before the labels are assembled
        kept = [self.filters.apply(r) for r in results]
        write_labels(task.output, stack_labels(kept, layout.leading))
        self.written.append(task.output)
        return sum(len(r) for r in kept), f" ({describe_tiles(grid)})" if grid else ""

    def load_models(self):
        """The model (and the detector), checked for the method: a file of another kind
        stops here, before any image is read."""
        from ..engine.errors import CheckpointError
        from ..engine.everything.methods import DETECTOR_NAME, check_detector, check_network

        model = load_for_command(self.model, self.checkpoint, self.device)
        detector = None
        try:
            check_network(self.method, model)
        except CheckpointError as exc:
            raise given_file_error("--checkpoint", self.checkpoint, exc) from None
        if self.method == "object_aware":
            detector = load_for_command(DETECTOR_NAME, self.detector, self.device)
            try:
                check_detector(detector)
            except CheckpointError as exc:
                raise given_file_error("--detector", self.detector, exc) from None
        return model, detector


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


def _fraction_or_off(value: float | None) -> float | None:
    if value is None or value >= 1:
        return None
    if value <= 0:
        raise ValueError(f"--max-area-fraction must lie in (0, 1], got {value}.")
    return value


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


def shared_contrast(image: np.ndarray) -> tuple[float, float] | None:
    """One intensity mapping for all planes of a file (0.5 / 99.5 percentiles), so that a
    dim slice of a stack is not stretched into noise; uint8 and bool images need none."""
    if image.dtype in (np.uint8, np.bool_):
        return None
    flat = image.reshape(-1)
    sample = flat[::max(1, flat.size // 4_000_000)]  # ~4 M pixels decide the percentiles
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]  # NaN planes are refused later, plane by plane
    if not sample.size:
        return None
    lo, hi = np.percentile(sample, (0.5, 99.5))
    return float(lo), float(hi)


def method_params(args) -> dict:
    """The method parameters given on the command line (named options and ``-p NAME=VALUE``)."""
    params = {}
    for name in ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "conf", "max_det"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"-p expects NAME=VALUE, got {item!r}.")
        params[name.strip()] = _literal(text.strip())
    return params


def _literal(text: str):
    """Numbers, True/False/None as Python literals; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
