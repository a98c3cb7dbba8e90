"""The workflow docks' screenshots (docs/workflows.md), made by ``make_screenshots.py
--only workflows`` with a shown viewer of 1366 x 768 (a laptop screen).

Data: planes of the nuclei z-stack sample saved as a series of TIFFs; the z-stack itself for
3D objects and the object table; a synthetic movie of blobs (two move, one divides) for
tracking, its per-frame labels made by thresholding (standing in for everything mode on all
frames, which the doc describes).  The model is the one ``make_screenshots`` chose (the
flood-fill stand-in on a machine without the official weights).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = (1366, 768)


def shoot_workflows(model: str, checkpoint: str | None, folder: Path, save, scroll_to) -> None:
    shoot_series(model, checkpoint, folder, save, scroll_to)
    labels = shoot_objects3d(model, checkpoint, save, scroll_to)
    shoot_table(labels, save, scroll_to)
    shoot_tracking(folder, save, scroll_to)


def _viewer():
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(*SIZE)
    return viewer


def shoot_series(model, checkpoint, folder: Path, save, scroll_to) -> None:
    import tifffile

    from napari_segany.engine.images import samples

    plates = folder / "plates"
    plates.mkdir(exist_ok=True)
    stack = samples.nuclei_zstack()
    for k, z in enumerate(range(2, 22, 3)):
        tifffile.imwrite(plates / f"well_{k:02d}.tif", stack[z])
    viewer = _viewer()
    dock, segany = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    segany.set_model(model, checkpoint=checkpoint, device="cpu")
    dock.hide()  # it works behind the scenes; its controls would make the window too tall
    _, series = viewer.window.add_plugin_dock_widget("napari-segany", "Image Series")
    series.open(plates, folder / "plates_labels")
    for _ in range(2):  # two images annotated: three nuclei each, clicked and committed
        for point in inside_nuclei(viewer.layers["Series image"].data, 3):
            segany.segment(points=[point])
            segany.commit()
        series.next()
        series.wait_prefetch()
    series.previous()  # back: its labels come back from the TIFF
    viewer.window.resize(*SIZE)  # the hidden dock's height no longer counts
    viewer.reset_view()
    scroll_to(series, series.progress_label)
    save(viewer, "series-dock.png")
    viewer.close()


def inside_nuclei(plane: np.ndarray, n: int) -> list[list[int]]:
    """(row, col) deep inside the ``n`` largest bright blobs of ``plane``."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    blobs, count = ndimage.label(plane > threshold_otsu(plane))
    sizes = np.bincount(blobs.ravel())[1:]
    points = []
    for k in np.argsort(sizes)[::-1][:n]:
        depth = ndimage.distance_transform_edt(blobs == k + 1)
        points.append([int(v) for v in np.unravel_index(int(depth.argmax()), depth.shape)])
    return points


def shoot_objects3d(model, checkpoint, save, scroll_to) -> np.ndarray:
    viewer = _viewer()
    viewer.open_sample("napari-segany", "nuclei_zstack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "3D Objects")
    widget.set_image(viewer.layers[0])
    widget.set_method("grid")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    widget.set_params(points_per_side=16)
    layer = widget.run()
    viewer.dims.ndisplay = 3
    viewer.layers[0].visible = False
    layer.opacity = 0.9
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.set_view_direction((1, 1.5, 0.5), (-1.5, 1, 0))
    scroll_to(widget, widget.status_label)
    save(viewer, "objects3d-dock.png")
    labels = np.asarray(layer.data)
    viewer.close()
    return labels


def shoot_table(labels: np.ndarray, save, scroll_to) -> None:
    from napari_segany.engine.images import samples

    viewer = _viewer()
    viewer.add_image(samples.nuclei_zstack(), name="nuclei")
    viewer.add_labels(labels, name="3D objects", opacity=0.6)
    viewer.dims.set_current_step(0, 12)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Object Table")
    widget.set_layers("3D objects", image="nuclei")
    table = widget.measure()
    widget.add_filter("area", float(np.percentile(table["area"], 30)), None)
    viewer.reset_view()
    widget.select_object(int(table["label"][np.argmax(table["area"])]))
    scroll_to(widget, widget.count_label)
    save(viewer, "object-table-dock.png")
    viewer.close()


def dividing_blobs(n_frames: int = 16, shape=(200, 240)) -> np.ndarray:
    """A movie of three blurred blobs: one drifting right, one down, one dividing at frame 8."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    movie = np.zeros((n_frames, *shape), np.float32)
    for t in range(n_frames):
        cells = [((50, 40 + 6 * t), 16), ((40 + 5 * t, 190), 14)]
        if t < 8:
            cells.append(((140, 110), 20))
        else:
            cells += [((140, 98 - 3 * (t - 8)), 14), ((140, 122 + 3 * (t - 8)), 14)]
        for (cy, cx), r in cells:
            movie[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        movie[t] = ndimage.gaussian_filter(movie[t], 2)
    return (200 + 1500 * movie + rng.normal(0, 40, movie.shape)).astype(np.float32)


def per_frame_labels(movie: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu
    from skimage.measure import label

    return np.stack([label(frame > threshold_otsu(frame)) for frame in movie]).astype(np.int32)


def shoot_tracking(folder: Path, save, scroll_to) -> None:
    movie = dividing_blobs()
    viewer = _viewer()
    viewer.add_image(movie, name="cells")
    viewer.add_labels(per_frame_labels(movie), name="per-frame labels", visible=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Tracking")
    widget.track("per-frame labels")
    widget.export_ctc(folder / "01_RES", kind="res")
    viewer.dims.set_current_step(0, 12)
    widget.a_spin.setValue(int(widget.editor.labels_layer.data[12][140, 90]))
    viewer.reset_view()
    scroll_to(widget, widget.status_label)
    save(viewer, "tracking-dock.png")
    viewer.close()
