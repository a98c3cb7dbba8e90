"""What ``napari-segany everything`` does once its arguments are parsed (see everything_cmd)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.errors import ImageError, SegAnyError
from ..engine.progress import Progress

log = logging.getLogger(__name__)
STEPS_PER_IMAGE = 1000


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
    written: list[Path] = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "EverythingRun":
        from ..engine.everything.presets import DEFAULT_MODEL, NO_FILTERS, FilterSettings
        from .everything_cmd import method_params

        params = method_params(args)
        check_params(args.method, params)
        if args.method != "object_aware" and args.detector is not None:
            raise ValueError("--detector is for --method object_aware only.")
        filters = NO_FILTERS if args.no_filters else FilterSettings(
            min_area=args.min_area, max_area_fraction=_fraction_or_off(args.max_area_fraction),
            min_score=args.min_score, min_stability=args.min_stability,
            max_contained=args.max_contained)
        model = args.model or DEFAULT_MODEL[args.method]
        check_model(args.method, model)
        tasks = plan_tasks(args.inputs, args.output)
        tasks = check_existing(tasks, args.overwrite, args.skip_existing)
        return cls(tasks, args.method, model, args.checkpoint,
                   args.detector, args.device, params, filters,
                   tuple(args.contrast) if args.contrast else None)

    # ------------------------------------------------------------------ running
    def run(self, quiet: bool = False, stream=None) -> int:
        from tqdm import tqdm

        if not self.tasks:
            log.warning("every output exists already (--skip-existing): nothing to do")
            return 0
        model, detector = self.load_models()
        bar = tqdm(total=len(self.tasks) * STEPS_PER_IMAGE, file=stream, disable=quiet,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        try:
            for k, task in enumerate(self.tasks):
                n_objects = self.run_one(k, task, model, detector, bar)
                bar.write(f"{task.source.name}: {n_objects} objects -> {task.output}", file=stream)
        finally:
            bar.close()
        return 0

    def run_one(self, k: int, task: Task, model, detector, bar) -> int:
        from ..engine.everything.stack import iter_segment_planes, nested
        from ..engine.image_io import plane_layout, read_image, write_labels

        image = read_image(task.source)
        layout = plane_layout(image.shape)
        planes = (image[index] for index in layout.indices())
        contrast = self.contrast or shared_contrast(image)
        job = iter_segment_planes(planes, layout.n_planes, model, self.method, detector,
                                  contrast, **self.params)
        n_tasks = len(self.tasks)
        bar.set_description(f"[{k + 1}/{n_tasks}] {task.source.name}")
        results = yield_to_bar(nested(job, k, n_tasks), bar)
        kept = [self.filters.apply(r) for r in results]
        labels = np.stack([r.labels for r in kept]).reshape(*layout.leading, *kept[0].image_shape)
        write_labels(task.output, labels)
        self.written.append(task.output)
        return sum(len(r) for r in kept)

    def load_models(self):
        from ..engine.everything.presets import DETECTOR_NAME
        from ..engine.weights import load_model

        model = load_model(self.model, checkpoint=self.checkpoint, device=self.device)
        detector = None
        if self.method == "object_aware":
            detector = load_model(DETECTOR_NAME, checkpoint=self.detector, device=self.device)
        return model, detector


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


def check_model(method: str, name: str) -> None:
    """Raise ValueError when the registry model cannot run ``method``."""
    from ..models.registry import INSTANCE, PROMPTABLE, get_spec, list_models

    wanted = INSTANCE if method == "fastsam" else PROMPTABLE
    if get_spec(name).task != wanted:
        raise ValueError(f"--method {method} needs one of {', '.join(list_models(wanted))}; "
                         f"{name} is a {get_spec(name).task} model.")


def check_params(method: str, params: dict) -> None:
    """Raise ValueError for parameters the method does not have (before any model loads)."""
    from ..engine.everything.fastsam_method import FastSAMParams
    from ..engine.everything.grid import GridParams
    from ..engine.everything.object_aware import ObjectAwareParams

    kind = {"grid": GridParams, "object_aware": ObjectAwareParams, "fastsam": FastSAMParams}[method]
    kind.from_kwargs(**params)


def plan_tasks(inputs: list[Path], output: Path) -> list[Task]:
    """Input files/folders -> (image, output TIFF) pairs."""
    from ..engine.image_io import TIFF_SUFFIXES, list_images

    sources: list[Path] = []
    for item in inputs:
        item = item.expanduser()
        if item.is_dir():
            sources.extend(list_images(item))
        elif item.is_file():
            sources.append(item)
        else:
            raise FileNotFoundError(f"{item} is neither an image file nor a folder.")
    output = output.expanduser()
    single_file = len(sources) == 1 and output.suffix.lower() in TIFF_SUFFIXES
    if not single_file and output.suffix.lower() in TIFF_SUFFIXES:
        raise ImageError(f"{len(sources)} images cannot all go to {output.name}: give a folder as -o.")
    if single_file:
        return [Task(sources[0], output)]
    names = [s.stem for s in sources]
    if len(set(names)) != len(names):
        raise ImageError("Two inputs share a file name (e.g. a.png and a.tif): their outputs "
                         "would collide; rename one or run them separately.")
    return [Task(s, output / f"{s.stem}_labels.tif") for s in sources]


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
    lo, hi = np.percentile(sample, (0.5, 99.5))
    return float(lo), float(hi)
