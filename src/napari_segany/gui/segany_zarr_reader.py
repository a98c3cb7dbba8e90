"""npe2 reader of batch outputs: ``OUT/<stem>.ome.zarr`` opens as the image and its labels.

Claims only OME-Zarr folders holding the labels of ``napari-segany batch``
(``labels/segany``, see ``engine/batch/ngff.py``), so other zarr folders go to other
readers (napari-ome-zarr, when installed, opens these too).  Every resolution level is read
lazily (dask), so a whole plate or a large volume opens at once.
"""
from __future__ import annotations

from pathlib import Path

LABELS = ("labels", "segany")


def get_reader(path):
    """The reader for a batch output folder, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    folder = Path(path)
    if not (folder.joinpath(*LABELS) / ".zattrs").is_file():
        return None
    return read_batch_output


def read_batch_output(path) -> list[tuple]:
    """[(image levels, kwargs, "image"), (labels levels, kwargs, "labels")]."""
    import zarr

    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    root = zarr.open_group(str(path), mode="r")
    stem = path.name.removesuffix(".ome.zarr")
    image, axes = _levels(root)
    labels, _ = _levels(root["/".join(LABELS)])
    image_kwargs = {"name": stem}
    if "c" in axes:  # a colour image: napari wants the colours last; labels drop their c of 1
        c = axes.index("c")
        image = [level.transpose(*[i for i in range(level.ndim) if i != c], c) for level in image]
        labels = [level[(slice(None),) * c + (0,)] for level in labels]
        image_kwargs["rgb"] = True
    return [(_multiscale(image), {**image_kwargs, "multiscale": len(image) > 1}, "image"),
            (_multiscale(labels), {"name": f"{stem} segany", "multiscale": len(labels) > 1},
             "labels")]


def _levels(group) -> tuple[list, list[str]]:
    import dask.array as da

    (multiscales,) = group.attrs["multiscales"][:1]
    levels = [da.from_zarr(group[d["path"]]) for d in multiscales["datasets"]]
    return levels, [a["name"] for a in multiscales["axes"]]


def _multiscale(levels: list):
    return levels if len(levels) > 1 else levels[0]
