"""Annotating a series of images one by one: which are done, where to resume, load and save.

:class:`ImageSeries` is the model behind the image-series dock (no Qt): a list of images (a
folder, a glob pattern or a list of files), an output folder holding one label TIFF per
image (same stem: ``cells_07.png`` -> ``OUT/cells_07.tif``), done / not done from those
files, the index to resume at, and loading / saving.  Labels are written atomically (a
temporary file renamed), so an interrupted save never leaves a half-written TIFF that would
count as done.  Files that cannot be read are recorded in ``bad`` and skipped by
:meth:`ImageSeries.next_index` / :meth:`ImageSeries.previous_index`.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ..errors import ImageError, SegAnyError
from ..images import io as image_io

LABELS_SUFFIX = ".tif"


class ImageSeries:
    """Images to annotate one after the other, with their labels in ``output``.

    Args:
        source: a folder (its image files, sorted by name), a glob pattern
            (``"plates/*_dapi.tif"``) or a list of image paths.
        output: the folder of the label TIFFs (created on the first save); not a folder
            holding images of the series.

    Attributes:
        images: the image paths, in order; ``skipped``: files of the source that are not
            images; ``bad``: ``{index: message}`` of images that could not be read.
    """

    def __init__(self, source, output):
        self.skipped: list[Path] = []
        self.images: list[Path] = _list_sources(source, self.skipped)
        self.output = Path(output).expanduser()
        self.bad: dict[int, str] = {}
        _check_names(self.images, self.output)

    def __len__(self) -> int:
        return len(self.images)

    def labels_path(self, index: int) -> Path:
        return self.output / (self.images[index].stem + LABELS_SUFFIX)

    def is_done(self, index: int) -> bool:
        return self.labels_path(index).is_file()

    @property
    def done(self) -> list[bool]:
        """Done / not done per image (a label TIFF exists), read from the output folder."""
        present = {p.name for p in self.output.iterdir()} if self.output.is_dir() else set()
        return [self.labels_path(i).name in present for i in range(len(self))]

    def progress_text(self) -> str:
        return f"{sum(self.done)} / {len(self)} done"

    def resume_index(self) -> int:
        """The first image not done (and not bad); the last image when all are done."""
        done = self.done
        todo = [i for i in range(len(self)) if not done[i] and i not in self.bad]
        return todo[0] if todo else len(self) - 1

    def next_index(self, index: int) -> int | None:
        """The next readable image after ``index`` (None at the end)."""
        return next((i for i in range(index + 1, len(self)) if i not in self.bad), None)

    def previous_index(self, index: int) -> int | None:
        """The previous readable image before ``index`` (None at the start)."""
        return next((i for i in range(index - 1, -1, -1) if i not in self.bad), None)

    def load_image(self, index: int) -> np.ndarray:
        """The pixels of image ``index``.  A file that cannot be read raises ImageError naming
        it, and is recorded in ``bad`` (then skipped by next/previous)."""
        path = self.images[index]
        try:
            return image_io.read_image(path)
        except (ImageError, OSError) as exc:
            message = str(exc) if isinstance(exc, ImageError) else f"Cannot read {path.name}: {exc}"
            self.bad[index] = message
            raise ImageError(message) from None

    def save_labels(self, index: int, labels) -> Path:
        """Write the labels of image ``index`` (atomically); returns the TIFF's path."""
        return image_io.write_labels(self.labels_path(index), np.asarray(labels))

    def load_labels(self, index: int) -> np.ndarray | None:
        """The saved labels of image ``index``, or None when it has none yet."""
        path = self.labels_path(index)
        if not path.is_file():
            return None
        import tifffile

        try:
            return np.asarray(tifffile.imread(path))
        except (OSError, ValueError) as exc:
            raise SegAnyError(f"Cannot read the saved labels {path}: {exc}. Delete or rename the "
                              "file to annotate the image again.") from None


def _list_sources(source, skipped: list) -> list[Path]:
    io = image_io
    if isinstance(source, (list, tuple)):
        files = [Path(p).expanduser() for p in source]
    elif Path(source).expanduser().is_dir():
        return io.list_images(source, skipped)
    else:
        files = [Path(p) for p in sorted(glob.glob(os.path.expanduser(str(source))))]
        files = [p for p in files if p.is_file()]
    images = [p for p in files if p.suffix.lower() in io.IMAGE_SUFFIXES]
    skipped.extend(p for p in files if p not in images)
    if not images:
        raise ImageError(f"No image in {source} (looked for {', '.join(io.IMAGE_SUFFIXES)}): "
                         "choose a folder of images or a pattern such as 'folder/*.tif'.")
    return images


def _check_names(images: list[Path], output: Path) -> None:
    by_stem: dict[str, Path] = {}
    for path in images:
        if path.stem in by_stem:
            raise SegAnyError(f"{by_stem[path.stem].name} and {path.name} would share the label "
                              f"file {path.stem}{LABELS_SUFFIX}: rename one of them.")
        by_stem[path.stem] = path
        if path.parent.resolve() == output.resolve():
            raise SegAnyError(f"The output folder {output} holds the images: label files would "
                              "mix with them (or overwrite TIFF images). Choose another folder.")
