"""The inputs of a batch: files, folders and globs -> image paths, and their output names.

A folder contributes the image files directly inside it (``images.io.IMAGE_SUFFIXES``) and
its ``*.zarr`` sub-folders (OME-Zarr images); a folder that is itself a zarr group is one
image.  A glob (``plates/*/field_*.tif``) is expanded by :mod:`glob`.  Each image's output
is ``OUT/<stem>.ome.zarr``; two inputs with one stem are refused before any work.
"""
from __future__ import annotations

import glob
from pathlib import Path

from ..errors import ImageError
from ..images.io import IMAGE_SUFFIXES

ZARR_SUFFIXES = (".zarr",)
#: Removed from a file name to make its output stem (longest first).
COMPOUND_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr")
GLOB_CHARS = set("*?[")


def is_zarr(path: Path) -> bool:
    """A zarr group or array folder (v2 ``.zgroup`` / ``.zarray`` or v3 ``zarr.json``)."""
    return path.is_dir() and any((path / name).is_file()
                                 for name in (".zgroup", ".zarray", "zarr.json"))


def stem_of(path: Path) -> str:
    """``cells.ome.tif`` -> ``cells``, ``plate.zarr`` -> ``plate``, ``a.png`` -> ``a``."""
    name = path.name
    for suffix in COMPOUND_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def expand_inputs(inputs, skipped: list | None = None) -> list[Path]:
    """Image paths of ``inputs`` (files, folders, globs), in the given order, each once.

    Files of input folders that are not images are appended to ``skipped``.  Raises
    FileNotFoundError for a path or glob that names nothing, ImageError for a folder with
    no image."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if is_zarr(path) or path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(_folder_images(path, skipped))
        elif GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(str(path)))]
            images = [m for m in matches if is_zarr(m) or m.is_file()]
            if not images:
                raise FileNotFoundError(f"{text} matches no file or zarr folder.")
            found.extend(images)
        else:
            raise FileNotFoundError(f"{text} is neither an image file, a folder nor a glob "
                                    "that matches files.")
    unique = list(dict.fromkeys(p.absolute() for p in found))
    check_stems(unique)
    return unique


def _folder_images(folder: Path, skipped: list | None) -> list[Path]:
    visible = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    images = [p for p in visible if (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
              or (p.suffix.lower() in ZARR_SUFFIXES and is_zarr(p))]
    if skipped is not None:
        skipped.extend(p for p in visible if p.is_file() and p not in images)
    if not images:
        raise ImageError(f"No image in {folder} (looked for {', '.join(IMAGE_SUFFIXES)} files "
                         "and .zarr folders).")
    return images


def check_stems(paths: list[Path]) -> None:
    """Refuse two inputs whose outputs would collide (``a.png`` and ``a.tif``)."""
    seen: dict[str, Path] = {}
    for path in paths:
        stem = stem_of(path)
        if stem in seen:
            raise ImageError(f"{seen[stem]} and {path} share the name {stem!r}: their outputs "
                             f"({stem}.ome.zarr) would collide; rename one or run them "
                             "separately.")
        seen[stem] = path
