"""napari-segany: the Segment Anything family (SAM, MobileSAM, EfficientSAM, FastSAM,
MobileSAMv2) for microscopy, in pure PyTorch, as a napari plugin and a scripting API.

The scripting API is imported lazily and never imports Qt or napari::

    import napari_segany as nsa
    model = nsa.load_model("mobile_sam")          # cache folder, then download
    predictor = nsa.Predictor(model)
    predictor.set_image(image)                    # (H, W[, C]) any dtype
    masks, scores, low_res = predictor.predict(point_coords=[[x, y]], point_labels=[1])
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_model": "napari_segany.engine.weights",
    "fetch_checkpoint": "napari_segany.engine.weights",
    "cache_dir": "napari_segany.engine.weights",
    "Predictor": "napari_segany.engine.predictor",
    "list_models": "napari_segany.models.registry",
    "get_spec": "napari_segany.models.registry",
    "REGISTRY": "napari_segany.models.registry",
    "segment_everything": "napari_segany.engine.everything",
    "iter_segment_everything": "napari_segany.engine.everything",
    "detect_objects": "napari_segany.engine.detection",
    "propagate": "napari_segany.engine.propagation",
    "iter_propagate": "napari_segany.engine.propagation",
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
