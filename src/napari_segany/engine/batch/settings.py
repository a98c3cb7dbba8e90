"""What a batch computes: the task and its options, checked before any work.

Tasks:

* ``everything``: everything mode on every plane (``everything.iter_segment_stack``, large
  planes tiled), filtered, ids unique per image;
* ``auto3d``: the same per plane, then the masks of each Z stack linked into 3D objects
  (``workflows.link_slices``, ``link_iou``); one id per object and image;
* ``track``: the same per frame of a (T, Y, X) series, then tracked with divisions
  (``workflows.track_labels``, ``track_iou``, ``divisions``); one id per track;
* ``embed``: the image embedding of every plane (tiles of large planes) into an
  :class:`~..embeddings.EmbeddingStore` (``OUT/embeddings``), as ``napari-segany embed``.

:meth:`BatchSettings.signature` is what a resumed run must share with the run it resumes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...models.registry import PROMPTABLE, ModelSpec, get_spec
from ..everything.methods import DEFAULT_MODEL, check_model_name, check_params
from ..everything.presets import FilterSettings
from ..precision import resolve_precision
from ..tiling import TilingSettings

TASKS = ("everything", "auto3d", "track", "embed")
EMBED_MODEL = "mobile_sam"  # the default of napari-segany embed


@dataclass(frozen=True)
class ModelRef:
    """Which weights a worker loads (once per process, see :mod:`.workers`)."""

    spec: ModelSpec
    checkpoint: str | None = None
    detector: str | None = None
    device: str | None = None
    method: str = "grid"
    precision: str = "fp32"  # resolved: "fp32" or "bf16"

    @property
    def cache_key(self) -> str:
        return "|".join(str(v) for v in (self.spec.name, self.checkpoint, self.detector,
                                         self.device, self.method, self.precision))


@dataclass
class BatchSettings:
    """The options of a batch run (see the module docstring for ``task``).

    method, model, checkpoint, detector, device, params: as ``segment_everything`` (model: a
    registry name or ModelSpec; None: the method's default, ``mobile_sam`` for embed).
    filters: applied to each plane's result (default: the microscopy defaults of the CLI).
    contrast_limits: (lo, hi) for every plane; None: uint8 as is, else one mapping per file
    (``images.contrast``: percentiles for the segmenting tasks, napari's default contrast
    limits for embed).  tiling: when planes are tiled.  axes, channel, level: how inputs
    are read (:mod:`.axes`, :mod:`.readers`).  store_dtype: embed's stored precision.
    precision: the encoders' ("fp32", "bf16" or "auto", as ``load_model``); "auto" is
    resolved once, in the process that starts the run (``device`` as given, else its
    default device), so that every worker computes in the same precision.
    """

    task: str = "everything"
    method: str = "grid"
    model: str | ModelSpec | None = None
    checkpoint: str | Path | None = None
    detector: str | Path | None = None
    device: str | None = None
    params: dict = field(default_factory=dict)
    filters: FilterSettings = field(default_factory=FilterSettings)
    contrast_limits: tuple[float, float] | None = None
    tiling: TilingSettings = field(default_factory=TilingSettings)
    axes: str | None = None
    channel: int | None = None
    level: int = 0
    link_iou: float = 0.5
    track_iou: float = 0.3
    divisions: bool = True
    store_dtype: str = "float16"
    precision: str = "fp32"

    def check(self) -> "BatchSettings":
        """Raise ValueError for options that cannot work together (before any model loads)."""
        if self.task not in TASKS:
            raise ValueError(f"Unknown batch task {self.task!r}: choose one of {', '.join(TASKS)}.")
        spec = self.spec
        if self.task == "embed":
            if spec.task != PROMPTABLE:
                raise ValueError(f"{spec.name} has no image encoder to precompute: embed needs a "
                                 "promptable model (mobile_sam, sam_vit_b...).")
        else:
            check_params(self.method, self.params)
            check_model_name(self.method, spec)
        if self.detector is not None and self.method != "object_aware":
            raise ValueError("A detector is for method 'object_aware' only.")
        for name in ("link_iou", "track_iou"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)}.")
        if self.level < 0 or (self.channel is not None and self.channel < 0):
            raise ValueError("level and channel are indices: give values >= 0.")
        self.tiling.check(spec.encoder_size)
        self.resolved_precision()  # ValueError for an unknown precision
        return self

    @property
    def spec(self) -> ModelSpec:
        if self.model is not None:
            return get_spec(self.model)
        return get_spec(EMBED_MODEL if self.task == "embed" else DEFAULT_MODEL[self.method])

    def resolved_precision(self) -> str:
        """"fp32" or "bf16": what the encoders of this run compute in (see the class)."""
        from ..weights import default_device

        return resolve_precision(self.precision, self.device or default_device())

    def model_ref(self) -> ModelRef:
        return ModelRef(self.spec, _path_text(self.checkpoint), _path_text(self.detector),
                        self.device, "embed" if self.task == "embed" else self.method,
                        self.resolved_precision())

    def signature(self) -> dict:
        """The settings that decide the outputs, as JSON-able values (not the scheduler)."""
        about = asdict(self)
        about["model"] = self.spec.name
        for name in ("checkpoint", "detector"):
            about[name] = _file_identity(getattr(self, name))
        about["filters"] = self.filters.as_dict()
        about["tiling"] = asdict(self.tiling)
        about["contrast_limits"] = list(self.contrast_limits) if self.contrast_limits else None
        del about["precision"]  # what it resolves to: "auto" and "bf16" on AMX compute alike
        if self.resolved_precision() != "fp32":  # fp32 runs keep their recorded settings
            about["precision"] = self.resolved_precision()
        return about


def _path_text(path) -> str | None:
    return None if path is None else str(Path(path).expanduser().absolute())


def _file_identity(path) -> list | None:
    """A weights file as (absolute path, size): another file under that name is noticed."""
    if path is None:
        return None
    path = Path(path).expanduser().absolute()
    return [str(path), path.stat().st_size if path.is_file() else None]
