"""napari-segany: the Segment Anything family (SAM, MobileSAM, EfficientSAM, SAM 2, FastSAM,
MobileSAMv2) for microscopy, in pure PyTorch, as a napari plugin and a scripting API.

The scripting API is imported lazily and never imports Qt or napari::

    import napari_segany as nsa
    model = nsa.load_model("mobile_sam")          # cache folder, then download
    predictor = nsa.Predictor(model)
    predictor.set_image(image)                    # (H, W[, C]) any dtype
    masks, scores, low_res = predictor.predict(point_coords=[[x, y]], point_labels=[1])

Everything listed in ``__all__`` is importable from here (``docs/api.md`` documents it):
models and weights, ``Predictor`` and the napari <-> SAM coordinate helpers, everything
mode, detection, propagation, embeddings (cache, on-disk store, tiling), the workflows (3D
objects, tracking with lineage, object tables, image series), progress and the errors.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    # models and weights
    "load_model": "napari_segany.engine.weights",
    "fetch_checkpoint": "napari_segany.engine.weights",
    "cache_dir": "napari_segany.engine.weights",
    "list_models": "napari_segany.models.registry",
    "get_spec": "napari_segany.models.registry",
    "REGISTRY": "napari_segany.models.registry",
    "resolve_precision": "napari_segany.engine.precision",
    "set_encoder_precision": "napari_segany.models.precision",
    # prompts on one image
    "Predictor": "napari_segany.engine.interactive",
    "predictor_for": "napari_segany.engine.tiling",
    "rc_to_xy": "napari_segany.engine.interactive",
    "xy_to_rc": "napari_segany.engine.interactive",
    "rectangle_to_box": "napari_segany.engine.interactive",
    "box_to_rectangle": "napari_segany.engine.interactive",
    # everything mode, detection
    "segment_everything": "napari_segany.engine.everything",
    "iter_segment_everything": "napari_segany.engine.everything",
    "segment_stack": "napari_segany.engine.everything",
    "FilterSettings": "napari_segany.engine.everything.presets",
    "detect_objects": "napari_segany.engine.detection",
    # propagation
    "propagate": "napari_segany.engine.propagation",
    "iter_propagate": "napari_segany.engine.propagation",
    "PromptOptions": "napari_segany.engine.propagation",
    "StopRules": "napari_segany.engine.propagation",
    "VideoPredictor": "napari_segany.engine.video",
    "VideoMasks": "napari_segany.engine.video",
    "MemorySession": "napari_segany.engine.propagation",
    "iter_propagate_memory": "napari_segany.engine.propagation",
    "propagate_memory": "napari_segany.engine.propagation",
    "MemoryPropagationResult": "napari_segany.engine.propagation",
    # embeddings: in-memory cache, on-disk store, large images
    "Embedding": "napari_segany.engine.embeddings",
    "EmbeddingCache": "napari_segany.engine.embeddings",
    "EmbeddingStore": "napari_segany.engine.embeddings",
    "TiledPredictor": "napari_segany.engine.tiling",
    "TilingSettings": "napari_segany.engine.tiling",
    "segment_everything_tiled": "napari_segany.engine.everything",
    "iter_segment_everything_tiled": "napari_segany.engine.everything",
    # workflows: 3D objects, tracking, object tables, image series
    "link_slices": "napari_segany.engine.workflows.slices",
    "segment_volume": "napari_segany.engine.workflows.volume",
    "iter_segment_volume": "napari_segany.engine.workflows.volume",
    "track_labels": "napari_segany.engine.workflows.tracking",
    "DivisionRule": "napari_segany.engine.workflows.tracking",
    "TrackingResult": "napari_segany.engine.workflows.tracks",
    "merge_tracks": "napari_segany.engine.workflows.tracks",
    "split_track": "napari_segany.engine.workflows.tracks",
    "set_parent": "napari_segany.engine.workflows.tracks",
    "write_ctc": "napari_segany.engine.workflows.ctc",
    "read_ctc": "napari_segany.engine.workflows.ctc",
    "object_features": "napari_segany.engine.workflows.features",
    "filter_objects": "napari_segany.engine.workflows.features",
    "write_features_csv": "napari_segany.engine.workflows.features",
    "result_features": "napari_segany.engine.workflows.mask_features",
    "ImageSeries": "napari_segany.engine.workflows.series",
    # batch and scale-out (dask)
    "batch": "napari_segany.engine.batch",
    "iter_batch": "napari_segany.engine.batch",
    "BatchSummary": "napari_segany.engine.batch",
    # progress, cancel, errors
    "Progress": "napari_segany.engine.progress",
    "Cancelled": "napari_segany.engine.errors",
    "SegAnyError": "napari_segany.engine.errors",
    "CheckpointError": "napari_segany.engine.errors",
    "WeightsNotFoundError": "napari_segany.engine.errors",
    "PromptError": "napari_segany.engine.errors",
    "ImageError": "napari_segany.engine.errors",
    "EmbeddingError": "napari_segany.engine.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_segany' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
