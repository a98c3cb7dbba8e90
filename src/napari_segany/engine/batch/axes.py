"""How a source array splits into the 2D planes a task segments: the axis letters.

Letters: ``T`` time, ``Z`` depth, ``C`` channel, ``S`` colour samples (RGB(A), last), ``Y``,
``X``.  Without ``axes`` the rule of ``napari-segany everything`` applies
(``images.io.plane_layout``): (H, W), (H, W, 3|4), (N, H, W), (N, H, W, 3|4), N being Z (T
for the ``track`` task).  A channel axis C (or S) keeps one channel with ``channel``; without
it, 3 or 4 channels are read as RGB(A) and one channel is dropped; other counts must be
chosen.  The planes are numbered in the leading axes' canonical order T, then Z (NGFF: time
first), whatever their order in the file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageError
from ..images.io import plane_layout

LETTERS = "TCZYXS"
LEADING = "TZ"


@dataclass(frozen=True)
class Layout:
    """The planes of one source array.

    source_axes: one letter per source axis (e.g. ``TCZYX``);
    leading: the plane axes in canonical order (``""``, ``T``, ``Z`` or ``TZ``);
    leading_shape: their sizes; plane_shape: (H, W);
    channel: (letter, index) of the channel kept, or None; colour: the letter of an RGB(A)
    axis kept as the plane's last axis (C or S), or None.
    """

    source_axes: str
    leading: str
    leading_shape: tuple[int, ...]
    plane_shape: tuple[int, int]
    channel: tuple[str, int] | None = None
    colour: str | None = None
    n_colours: int = 0

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.leading_shape)) if self.leading_shape else 1

    def plane_index(self, k: int) -> tuple[int, ...]:
        """The leading index (canonical order) of plane number ``k`` (row-major)."""
        return tuple(int(i) for i in np.unravel_index(k, self.leading_shape)) \
            if self.leading_shape else ()

    def source_index(self, k: int) -> tuple:
        """Numpy index of plane ``k`` into the source array."""
        at = dict(zip(self.leading, self.plane_index(k)))
        if self.channel is not None:
            at[self.channel[0]] = self.channel[1]
        return tuple(at.get(letter, slice(None)) for letter in self.source_axes)

    def read_plane(self, image, k: int) -> np.ndarray:
        """Plane ``k`` of ``image`` (a LazyImage or array): (H, W), or (H, W, C) for colour."""
        plane = np.asarray(image[self.source_index(k)])
        kept = [a for a in self.source_axes if a in "YX" or a == self.colour]
        order = [kept.index(a) for a in "YX"] + ([kept.index(self.colour)] if self.colour else [])
        return np.transpose(plane, order) if order != list(range(len(order))) else plane


def plane_axes(shape: tuple[int, ...], axes: str | None, channel: int | None,
               task: str) -> Layout:
    """The Layout of a source of ``shape``; ``axes`` as given (``--axes``) or read from the
    file (None: the default rule).  Raises ImageError saying which option to give."""
    shape = tuple(int(s) for s in shape)
    letters = _default_axes(shape, task) if axes is None else _checked_axes(axes, shape)
    size = dict(zip(letters, shape))
    colour_letter = next((a for a in "SC" if a in size), None)
    chosen = _channel_choice(letters, size, channel)
    colour = colour_letter if colour_letter and chosen is None and size[colour_letter] in (3, 4) \
        else None
    for extra in set(size) - set(LEADING + "YX") - {colour} - ({chosen[0]} if chosen else set()):
        raise ImageError(f"Axis {extra} ({size[extra]} values) is neither a plane axis nor "
                         f"chosen: give --channel to keep one channel.")
    leading = "".join(a for a in LEADING if a in size)
    return Layout(letters, leading, tuple(size[a] for a in leading), (size["Y"], size["X"]),
                  chosen, colour, size[colour] if colour else 0)


def _default_axes(shape, task: str) -> str:
    try:
        layout = plane_layout(shape)
    except ImageError:
        raise ImageError(f"Cannot tell the axes of an array of shape {shape}: give them with "
                         "--axes (letters T, C, Z, Y, X, S), e.g. --axes TCZYX --channel 0.") from None
    stack = ("T" if task == "track" else "Z") if layout.leading else ""
    return stack + "YX" + ("S" if layout.rgb else "")


def _checked_axes(axes: str, shape) -> str:
    letters = axes.upper()
    if len(letters) != len(shape) or set(letters) - set(LETTERS) or len(set(letters)) != len(letters):
        raise ImageError(f"--axes {axes!r} does not describe an array of shape {shape}: give one "
                         f"distinct letter of {LETTERS} per axis ({len(shape)} letters).")
    if "Y" not in letters or "X" not in letters:
        raise ImageError(f"--axes {axes!r} needs the plane axes Y and X.")
    if "S" in letters and letters[-1] != "S":
        raise ImageError(f"--axes {axes!r}: S (colour samples) must be the last axis.")
    return letters


def _channel_choice(letters: str, size: dict, channel: int | None):
    axis = "C" if "C" in size else ("S" if "S" in size else None)
    if axis is None:
        if channel is not None:
            raise ImageError("--channel needs a channel axis (C or S) in --axes.")
        return None
    if channel is None:
        if size[axis] == 1:
            return axis, 0
        if size[axis] in (3, 4):
            return None  # read as RGB(A)
        raise ImageError(f"Axis {axis} has {size[axis]} channels: choose one with --channel "
                         f"0..{size[axis] - 1}.")
    if not 0 <= channel < size[axis]:
        raise ImageError(f"--channel {channel} does not exist: axis {axis} has {size[axis]} "
                         f"channels (0..{size[axis] - 1}).")
    return axis, int(channel)
