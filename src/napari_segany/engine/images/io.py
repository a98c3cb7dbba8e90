"""Reading images and writing label images for the command line (no napari, no Qt).

* in: TIFF (tifffile), PNG / JPEG / BMP (Pillow), NPY (numpy, never unpickling);
* out: label images as TIFF, zlib-compressed, in the smallest unsigned type that holds the
  largest id (uint8, uint16 or uint32: Fiji, napari and QuPath read all three);
* how an array splits into 2D planes (:func:`plane_layout`): (H, W) and (H, W, 3|4) are one
  image, (N, H, W) and (N, H, W, 3|4) are N slices along the first axis.

Arrays are (row, col) = (y, x) with optional leading slice axes and a trailing colour axis.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageError, SegAnyError

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + (".npy",)
NPY_MAGIC = b"\x93NUMPY"


def read_image(path) -> np.ndarray:
    """The pixels of an image file as an ndarray (see the module docstring for formats).

    Raises FileNotFoundError for a missing file and ImageError, naming the file, for one that
    cannot be decoded (corrupt, truncated, another format under an image suffix) or that
    holds no real-valued pixels.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No image file at {path}.")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(f"{path.name}: unsupported file type {suffix!r}; use one of "
                         f"{', '.join(IMAGE_SUFFIXES)}.")
    try:
        image = _decode(path, suffix)
    except ImageError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # the system refused (permissions, I/O error), not the decoder
            raise ImageError(f"Cannot read {path.name}: {exc.strerror}.") from None
        raise ImageError(undecodable(path, suffix, exc)) from None
    except (ValueError, EOFError, SyntaxError) as exc:  # what the decoders raise on bad bytes
        raise ImageError(undecodable(path, suffix, exc)) from None
    return check_pixels(image, path.name)


def _decode(path: Path, suffix: str) -> np.ndarray:
    if suffix in TIFF_SUFFIXES:
        import tifffile

        return np.asarray(tifffile.imread(path))
    if suffix in PIL_SUFFIXES:
        from PIL import Image

        with Image.open(path) as image:
            return np.array(image)
    return _read_npy(path)


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        if fh.read(6) != NPY_MAGIC:
            raise ImageError(f"{path.name} is not a NumPy .npy file (save arrays with numpy.save).")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):  # refuse rather than unpickle
            raise ImageError(f"{path.name} holds Python objects, not pixels: save a numeric "
                             "array.") from None
        raise


def check_pixels(image: np.ndarray, name: str) -> np.ndarray:
    """Refuse arrays no model can take (no pixels, complex or non-numeric values), naming
    the file; NaN and shape are checked per plane later (they depend on the layout)."""
    if image.size == 0:
        raise ImageError(f"{name} holds no pixels (shape {image.shape}): the file is empty or "
                         "corrupt.")
    if image.dtype.kind not in "biuf":
        raise ImageError(f"{name} has pixels of type {image.dtype}; use an integer, float or "
                         "bool image.")
    return image


def has_non_finite(plane: np.ndarray, rows: int = 512) -> bool:
    """True when a float plane holds NaN or infinity; checked a band of rows at a time, so a
    whole-slide plane needs no plane-sized temporary."""
    if plane.dtype.kind != "f":
        return False
    return any(not np.isfinite(plane[r:r + rows]).all() for r in range(0, plane.shape[0], rows))


def plane_problem(plane) -> str | None:
    """Why no model can take a 2D plane (fewer than 2 x 2 pixels, NaN or infinite values), or
    None; checked before any work, band by band."""
    if plane.shape[0] < 2 or plane.shape[1] < 2:
        return f"{plane.shape[0]}x{plane.shape[1]} pixels: need at least 2x2."
    if has_non_finite(plane):
        return ("it contains NaN or infinite values (replace them, e.g. with 0, to embed it; "
                "the widget refuses such slices too).")
    return None


def undecodable(path: Path, suffix: str, exc: BaseException) -> str:
    return (f"Cannot read {path.name}: {_first_line(exc)}. The file is corrupt, truncated or "
            f"not a valid {suffix} file.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def list_images(folder, skipped: list | None = None) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped).

    Other visible files are appended to ``skipped`` when given, so that a caller can say
    which files it leaves out."""
    folder = Path(folder).expanduser()
    visible = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    files = [p for p in visible if p.suffix.lower() in IMAGE_SUFFIXES]
    if skipped is not None:
        skipped.extend(p for p in visible if p.suffix.lower() not in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"No image in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return files


@dataclass(frozen=True)
class PlaneLayout:
    """How an array is cut into 2D planes: ``leading`` slice axes, then (H, W[, C])."""

    leading: tuple[int, ...]  # () for a single 2D image, (N,) for a stack
    rgb: bool

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.leading)) if self.leading else 1

    def indices(self) -> list[tuple[int, ...]]:
        return [tuple(int(i) for i in idx) for idx in np.ndindex(*self.leading)] if self.leading else [()]


def plane_layout(shape: tuple[int, ...]) -> PlaneLayout:
    """(H, W) or (H, W, 3|4): one image; (N, H, W) or (N, H, W, 3|4): N slices.

    A trailing axis of 3 or 4 is colour (RGB / RGBA).  Raise ImageError for other shapes,
    saying how to fix the file.
    """
    shape = tuple(int(s) for s in shape)
    colour = len(shape) >= 3 and shape[-1] in (3, 4)
    spatial = len(shape) - colour
    if spatial == 2:
        return PlaneLayout((), colour)
    if spatial == 3:
        return PlaneLayout(shape[:1], colour)
    raise ImageError(f"Cannot read an array of shape {shape} as 2D images: expected (H, W), "
                     "(H, W, 3), (N, H, W) or (N, H, W, 3). Split other axes (time, channels) "
                     "into separate files first.")


def labels_dtype(max_id: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ImageError(f"{max_id} labels do not fit in 32 bits.")


def write_labels(path, labels: np.ndarray) -> Path:
    """Write a label image (any leading axes) as a compressed TIFF, atomically: the file
    appears complete or not at all (a cancelled run leaves no half-written output).

    A location that cannot be written (a file where a folder should be, no permission, a
    full disk) raises SegAnyError naming the output; nothing is left behind."""
    import tifffile

    path = Path(path).expanduser()
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ImageError(f"Labels are written as TIFF: give an output ending in .tif, not {path.name}.")
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ImageError("Label ids must be >= 0.")
    data = labels.astype(labels_dtype(int(labels.max()) if labels.size else 0), copy=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".tif", dir=path.parent, prefix=f".{path.stem}-")
    except OSError as exc:
        raise SegAnyError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    os.close(fd)
    try:
        tifffile.imwrite(tmp, data, compression="zlib", photometric="minisblack")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SegAnyError(f"Cannot write {path}: {exc.strerror or exc}; nothing was "
                              "written there.") from None
        raise
    return path


def unwritable_reason(path) -> str | None:
    """Why the file ``path`` could not be created, or None when it looks possible: checked
    before any work, without creating anything (missing folders would be created)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        return f"{path} is a folder"
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to write in {ancestor}"
    return None
