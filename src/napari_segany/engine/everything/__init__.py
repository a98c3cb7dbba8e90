"""Everything mode: every object of an image, three ways.

* ``grid``: SAM's automatic mask generator (a point grid), see :mod:`.grid`;
* ``object_aware``: MobileSAMv2, detector boxes as prompts, see :mod:`.object_aware`;
* ``fastsam``: FastSAM's instance masks in one pass.

:func:`iter_segment_everything` is the generator form (yields Progress, returns the result)
for workers; :func:`segment_everything` runs it to the end.  Which model each method needs:
:mod:`.methods`.  Large images: :mod:`.tiled` (tile by tile, merged across tiles).  Every
plane of a stack, tiled or not: :func:`iter_segment_stack` (:mod:`.stack`).
"""
from __future__ import annotations

from ..progress import Job, Progress, run
from .methods import DETECTOR_NAME, METHODS, check_method, check_network
from .result import EverythingResult, Record
from .stack import iter_segment_stack, segment_stack
from .tiled import iter_segment_everything_tiled, segment_everything_tiled

__all__ = ["segment_everything", "iter_segment_everything", "EverythingResult", "Record", "METHODS",
           "segment_everything_tiled", "iter_segment_everything_tiled", "segment_stack",
           "iter_segment_stack"]


def segment_everything(image, model, method: str = "grid", detector=None, contrast_limits=None,
                       embedding=None, callback=None, **params) -> EverythingResult:
    """Segment every object of one 2D image.

    Args:
        image: (H, W), (H, W, 1|3|4), any dtype (see Predictor.set_image).
        model: a loaded promptable model (grid, object_aware) or FastSAM model (fastsam), or
            its registry name.
        method: "grid", "object_aware" or "fastsam".
        detector: object_aware only: the loaded MobileSAMv2 detector, its registry name, or a
            path to ObjectAwareModel.pt.
        contrast_limits: (lo, hi) intensity mapping for non-uint8 images.
        embedding: the image embedding of ``model`` for this image, if already computed (an
            ``Embedding``, or its (1, C, h, w) tensor).
        callback: called with each Progress; return False to cancel (raises Cancelled).
        **params: method parameters (GridParams, ObjectAwareParams or FastSAM's conf/iou/...).

    Returns:
        EverythingResult with ``records`` (SAM style) and ``labels`` (H x W int32).
    """
    return run(iter_segment_everything(image, model, method, detector, contrast_limits,
                                       embedding, **params), callback)


def iter_segment_everything(image, model, method: str = "grid", detector=None,
                            contrast_limits=None, embedding=None, *, cancel=None,
                            **params) -> Job[EverythingResult]:
    """The generator form of :func:`segment_everything`; ``cancel`` (an Event) stops it
    between two steps of a decoder batch (raises Cancelled; nothing is returned)."""
    from ..images import to_uint8_rgb

    check_method(method)
    rgb = to_uint8_rgb(image, contrast_limits)
    model = as_model(model)
    if method == "fastsam":
        from .fastsam_method import iter_fastsam

        return (yield from iter_fastsam(rgb, model, **params))
    from ..interactive import Predictor
    from .result import records_from_candidates

    check_network(method, model)
    predictor = Predictor(model)
    if method == "grid":
        data, n_prompts = yield from _grid(predictor, rgb, embedding, params, cancel)
    else:
        data, n_prompts = yield from _object_aware(predictor, rgb, detector, embedding, params,
                                                   cancel)
    records = records_from_candidates(data, method)
    yield Progress(1, 1, f"{len(records)} objects")
    return EverythingResult(records, rgb.shape[:2], method, n_prompts)


def _grid(predictor, rgb, embedding, params, cancel=None):
    from .grid import GridParams, iter_grid
    from .methods import with_model_defaults
    from .small_regions import postprocess_small_regions

    p = GridParams.from_kwargs(**with_model_defaults("grid", predictor.spec, params))
    data, n_prompts = yield from iter_grid(predictor, rgb, p, embedding, cancel)
    if p.min_mask_region_area > 0 and len(data):
        data = postprocess_small_regions(data, p.min_mask_region_area,
                                         max(p.box_nms_thresh, p.crop_nms_thresh))
    return data, n_prompts


def _object_aware(predictor, rgb, detector, embedding, params, cancel=None):
    from .methods import with_model_defaults
    from .object_aware import ObjectAwareParams, iter_object_aware

    if detector is None:
        raise ValueError("method='object_aware' needs detector= (the MobileSAMv2 ObjectAwareModel.pt "
                         "path, or a model from load_model('mobilesamv2_objectaware', checkpoint=...)).")
    p = ObjectAwareParams.from_kwargs(**with_model_defaults("object_aware", predictor.spec, params))
    return (yield from iter_object_aware(predictor, rgb, as_detector(detector), p, embedding,
                                         cancel))


def as_model(model):
    """A loaded model, loading a registry name once."""
    if isinstance(model, str):
        from ..weights import load_model

        return load_model(model)
    return model


def as_detector(detector):
    """A loaded MobileSAMv2 detector, from a registry name or a path (loaded once)."""
    if isinstance(detector, str) or hasattr(detector, "__fspath__"):
        from ..weights import load_model
        from ...models.registry import REGISTRY

        if isinstance(detector, str) and detector in REGISTRY:
            return load_model(detector)
        return load_model(DETECTOR_NAME, checkpoint=detector)
    return detector
