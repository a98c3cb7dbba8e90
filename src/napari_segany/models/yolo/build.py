"""Builders for YOLOv8 networks from the configuration the checkpoint reader recovers."""
from __future__ import annotations

from typing import Mapping

from .yolov8 import YOLOv8, layer_channels, repeats

#: depth multiple, width multiple, max channels per scale (yolov8*.yaml ``scales``).
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}

CHANNEL_ORDERS = ("rgb", "bgr")


def expected_signature(depth: float, width: float, max_channels: int) -> tuple[int, int, int, int]:
    """(stem channels, SPPF output channels, bottlenecks in layer 2, in layer 4): a cheap
    fingerprint of a scale, compared with the tensors of a checkpoint."""
    c = layer_channels(width, max_channels)
    return (c[64], c[1024], repeats(3, depth), repeats(6, depth))


def build_yolov8(
    scale: str | None = None,
    depth_multiple: float | None = None,
    width_multiple: float | None = None,
    max_channels: int | None = None,
    nc: int = 1,
    reg_max: int = 16,
    head: str = "segment",
    nm: int = 32,
    npr: int | None = None,
    has_proto: bool = True,
    names: Mapping[int, str] | None = None,
    input_channel_order: str = "rgb",
) -> YOLOv8:
    """A randomly initialised YOLOv8(-seg) network.

    Args:
        scale: 'n', 's', 'm', 'l' or 'x'; explicit multipliers override it.
        depth_multiple, width_multiple, max_channels: the yaml's scale triple.
        nc: number of classes (1 for FastSAM and the MobileSAMv2 detector).
        reg_max: DFL bins per box side (16 FastSAM, 26 MobileSAMv2 object-aware model).
        head: 'segment' (mask coefficients, FastSAM/MobileSAMv2 files) or 'detect'.
        nm: mask coefficients; npr: prototype channels (default: 256 scaled like the yaml).
        has_proto: False for the object-aware model (coefficients but no prototypes).
        names: class names {index: name}, kept as ``model.names``.
        input_channel_order: 'rgb' or 'bgr', the channel order the *official* pipeline of
            these weights feeds (MobileSAMv2's object-aware model sees BGR); read by the engine.
    """
    depth, width, max_ch = _multipliers(scale, depth_multiple, width_multiple, max_channels)
    if reg_max < 1 or nc < 1:
        raise ValueError(f"reg_max and nc must be >= 1, got reg_max={reg_max}, nc={nc}.")
    if input_channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"input_channel_order must be one of {CHANNEL_ORDERS}, got {input_channel_order!r}.")
    if npr is None:
        npr = layer_channels(width, max_ch)[256]  # the yaml's 256, scaled like every width
    model = YOLOv8(depth, width, max_ch, nc=nc, reg_max=reg_max, head=head, nm=nm, npr=npr,
                   has_proto=has_proto)
    model.names = dict(names) if names else {i: f"class{i}" for i in range(nc)}
    model.scale = scale
    model.input_channel_order = input_channel_order
    return model


def _multipliers(scale, depth, width, max_channels) -> tuple[float, float, int]:
    if scale is not None and scale not in SCALES:
        raise ValueError(f"Unknown YOLOv8 scale {scale!r}: choose one of {', '.join(SCALES)}.")
    base = SCALES.get(scale) if scale else None
    if base is None and None in (depth, width):
        raise ValueError("Give a scale ('n'...'x') or both depth_multiple and width_multiple.")
    depth = base[0] if depth is None else float(depth)
    width = base[1] if width is None else float(width)
    if max_channels is None:
        max_channels = base[2] if base else 1 << 30
    return depth, width, int(max_channels)
