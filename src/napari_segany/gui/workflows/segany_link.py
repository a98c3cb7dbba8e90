"""The Image Series dock and the Segment Anything dock, through the viewer and the public
attributes of ``SegAnyWidget`` (no new method on it).

* The series shows each image in one Image layer (its data replaced) and its labels in the
  Labels layer named ``LABELS_NAME`` ("SegAny labels"), which both segmentation docks take
  as their target by default; :func:`point_segany_at` makes the open Segment Anything
  docks segment that image into those labels (their ``set_image`` / ``set_labels``).
* :func:`prefetch_job` computes the next image's embedding in the background, into the
  Segment Anything dock's ``cache`` (and so its on-disk store), keyed exactly as that dock
  keys the image once shown: the pixels' digest, the model, and the contrast limits the
  series will give the layer (``EmbeddingKey``).  The dock then finds it there at the first
  click, without computing it.
"""
from __future__ import annotations

import numpy as np

from ...engine.embeddings import EmbeddingKey, iter_encode, model_identity, normalisation_key
from ...engine.embeddings import slice_digest
from ...engine.images import to_uint8_rgb
from ...engine.tiling import tiles_for
from ...engine.progress import Progress
from ..interactive.widget import SegAnyWidget

BUSY = "the Segment Anything dock is embedding"


def segany_widgets(viewer) -> list:
    """The open Segment Anything docks of ``viewer``."""
    docks = getattr(getattr(viewer, "window", None), "dock_widgets", {})
    return [w for w in docks.values() if isinstance(w, SegAnyWidget) and not w.closed]


def point_segany_at(viewer, image_layer, labels_layer) -> None:
    """Make the open Segment Anything docks segment ``image_layer`` into ``labels_layer``."""
    for widget in segany_widgets(viewer):
        source = widget.source
        if source is None or source.layer != image_layer:  # != : napari's proxies
            widget.set_image(image_layer)
        target = widget.writer.layer
        if widget.source is not None and (target is None or target != labels_layer):
            widget.set_labels(labels_layer)


def embedder(viewer, shape) -> tuple[object, object, str]:
    """``(predictor, cache, '')`` of the first Segment Anything dock with a model, or
    ``(None, None, why not)``.  Large images (tiled by that dock) are not prefetched: their
    tiles are embedded where the prompts fall."""
    widgets = [w for w in segany_widgets(viewer) if w.predictor is not None]
    if not widgets:
        return None, None, "no model loaded in the Segment Anything dock"
    widget = widgets[0]
    if len(shape) != 2:
        return None, None, "stacks are embedded slice by slice when shown"
    if widget.embeddings.busy:
        return None, None, BUSY
    if tiles_for(widget.predictor.model, shape, widget.store_panel.tiling.settings()) is not None:
        return None, None, "a large image: its tiles are embedded where you click"
    return widget.predictor, widget.cache, ""


def embedding_key(predictor, pixels: np.ndarray, limits) -> EmbeddingKey:
    """The key the Segment Anything dock gives ``pixels`` shown with ``limits``."""
    return EmbeddingKey(slice_digest(pixels), model_identity(predictor.model),
                        normalisation_key(limits))


def prefetch_job(predictor, cache, pixels: np.ndarray, limits, cancel):
    """Embed ``pixels`` into ``cache`` unless it holds them (a job: Progress, returns the key).
    ``cancel`` (an Event) stops the encoder within one block."""
    yield Progress(0, 1, "hashing")
    key = embedding_key(predictor, pixels, limits)
    if cache.get(key) is None:  # get: the on-disk store behind the cache too
        entry = yield from iter_encode(predictor, to_uint8_rgb(pixels, limits), cancel)
        cache.put(key, entry)
    return key
