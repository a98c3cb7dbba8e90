"""Which 2D slice of an image layer is shown, and how the model should see it.

Axis conventions (napari's): an image layer is (..., Y, X) for grayscale, (..., Y, X, 3|4)
for RGB (``layer.rgb``), or, with a channel axis first, (C, ..., Y, X).  The *spatial* axes
are those without the channel axis; the Labels, the prompt layers and the slice index use
them.  Segmentation works on views of the last two spatial axes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from napari.layers import Image

from ...engine.errors import ImageError
from ...engine.images import to_uint8_rgb

MAX_CHANNELS = 3  # channels map to R, G, B


@dataclass(frozen=True)
class ImageSource:
    """An image layer and how to read it: ``channel_first`` and the channels mapped to RGB."""

    layer: Image
    channel_first: bool = False
    channels: tuple[int, ...] = (0, 1, 2)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        shape = self.layer.data.shape
        if self.layer.rgb:
            return tuple(shape[:-1])
        return tuple(shape[1:]) if self.channel_first else tuple(shape)

    @property
    def spatial_scale(self) -> tuple[float, ...]:
        return tuple(self.layer.scale[1:] if self.channel_first else self.layer.scale)

    @property
    def spatial_translate(self) -> tuple[float, ...]:
        return tuple(self.layer.translate[1:] if self.channel_first else self.layer.translate)

    @property
    def n_leading(self) -> int:
        """Spatial axes before Y, X (z, t...): the slice index has one entry per axis."""
        return len(self.spatial_shape) - 2

    def check(self) -> None:
        """Raise ImageError when the layer cannot be segmented, saying what to do."""
        ndim = len(self.spatial_shape)
        if ndim < 2:
            raise ImageError(f"{self.layer.name!r} has {ndim} spatial axis: need at least Y, X.")
        if ndim > 4:
            raise ImageError(f"{self.layer.name!r} has {ndim} spatial axes; up to 4 are supported "
                             "(e.g. T, Z, Y, X). Split the extra axis into layers first.")
        shape = self.spatial_shape
        if min(shape) < 1 or min(shape[-2:]) < 2:
            raise ImageError(f"{self.layer.name!r} has spatial shape {shape}: every axis needs "
                             "pixels, and Y, X at least 2 each.")
        if self.channel_first:
            n = self.layer.data.shape[0]
            bad = [c for c in self.channels if not 0 <= c < n]
            if bad or not 1 <= len(self.channels) <= MAX_CHANNELS:
                raise ImageError(f"Channels {list(self.channels)} do not fit the {n} channels "
                                 f"of {self.layer.name!r}: pick 1 to 3 of 0..{n - 1}.")
        if self.layer.data.dtype.kind not in "biuf":
            raise ImageError(f"{self.layer.name!r} has pixels of type {self.layer.data.dtype}; "
                             "use an integer or float image.")

    def index_from_world(self, world_point) -> tuple[int, ...]:
        """The slice index (leading spatial axes) of a world position, clipped to the data."""
        data_point = np.asarray(self.layer.world_to_data(world_point))
        if self.channel_first:
            data_point = data_point[1:]
        leading = data_point[: self.n_leading]
        limits = np.asarray(self.spatial_shape[: self.n_leading]) - 1
        return tuple(int(v) for v in np.clip(np.round(leading), 0, limits))

    def read(self, index: tuple[int, ...], data=None) -> np.ndarray:
        """The raw pixels of one slice: (H, W), (H, W, 3|4) for RGB, (H, W, k) for channels.

        ``data``: read this array (of the layer's shape) instead of the layer's current data,
        e.g. the data a long run started with, which the user may replace meanwhile."""
        data = self.layer.data if data is None else data
        if self.channel_first:
            planes = [np.asarray(data[(c, *index)]) for c in self.channels]
            return np.stack(planes, axis=-1)
        return np.asarray(data[tuple(index)])

    def normalisation(self):
        """What maps the raw slice to uint8 (part of the embedding key)."""
        if self.channel_first:
            return ("per-channel-percentiles", self.channels)
        return tuple(float(v) for v in self.layer.contrast_limits)

    def to_rgb(self, raw: np.ndarray) -> np.ndarray:
        """The uint8 RGB the model sees: what the user sees (the layer's contrast limits), or,
        for a channel axis, each channel stretched by its own percentiles."""
        if self.channel_first:
            planes = [to_uint8_rgb(raw[..., i])[..., 0] for i in range(raw.shape[-1])]
            if len(planes) == 1:
                planes *= 3  # one channel: gray
            while len(planes) < 3:
                planes.append(np.zeros_like(planes[0]))  # two channels: R, G
            return np.stack(planes, axis=-1)
        return to_uint8_rgb(raw, self.layer.contrast_limits)
