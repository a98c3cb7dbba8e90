"""Make the user guide's screenshots with a real (shown) napari viewer under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--model mobile_sam]

With the official weights in the cache (``--model mobile_sam``, the default when present) the
masks are the model's.  Without them (a machine with no network, as the one that made the
committed PNGs) the script registers a *stand-in* promptable model: the widget, the layers,
the workers and every step are the real ones, but its masks come from a flood fill of the
smoothed image around the click, not from SAM.  The user guide says which one was used.

The stand-in also serves everything mode's point grid (one flood fill per grid point; its
"predicted IoU" is lowered for hollow masks) and propagation (flood fill clipped to the
propagation's box; its score drops when the mask runs into the box's edges, so a walk stops
where the object fades out).

PNGs go to docs/images/ (``--out`` for another folder), palette-quantised to stay small;
``--only everything propagation`` makes only those groups.  Embeddings go to a temporary
store, not the user's cache.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
WINDOW = (1366, 768)  # a laptop screen (issue 14): the docks must fit it


# --- the stand-in: the promptable-model contract, masks by flood fill ---------------------------
class FloodFillStandIn(nn.Module):
    """encode() keeps a 4x-downsampled gray copy of the model input as the "embedding"
    (pixel-unshuffled to the (1, 16, 64, 64) shape of an embedding grid);
    decode() flood-fills it from the first positive point (three tolerances = three
    candidates; clipped to the box when a box comes with the point, as in propagation)
    or, for a box alone, thresholds the inside of the box.  Scores are fixed per candidate,
    scaled down for masks with holes and for masks running into their box's edges."""

    mask_threshold = 0.0
    supports_mask_input = True
    image_size = 1024

    def __init__(self):
        super().__init__()
        self.image_encoder = nn.Module()
        self.image_encoder.blocks = nn.ModuleList([nn.Identity() for _ in range(4)])
        self.device_anchor = nn.Parameter(torch.zeros(1))  # Predictor.device reads parameters

    def encode(self, x):
        gray = x.mean(1, keepdim=True)
        for block in self.image_encoder.blocks:
            gray = block(gray)
        small = torch.nn.functional.avg_pool2d(gray, 4)  # (1, 1, 256, 256)
        return torch.nn.functional.pixel_unshuffle(small, 4)  # (1, 16, 64, 64)

    def decode(self, embeddings, point_coords=None, point_labels=None, boxes=None,
               mask_input=None, multimask_output=True):
        """One prompt set per batch row (everything mode's grid decodes many at once)."""
        from scipy import ndimage

        small = torch.nn.functional.pixel_shuffle(embeddings, 4)[0, 0]
        image = ndimage.gaussian_filter(small.numpy().astype(float), 1.5)
        n = len(boxes) if boxes is not None else len(point_coords)
        masks, confidence = zip(*(self._decode_one(
            image,
            None if point_coords is None else point_coords[i].tolist(),
            None if point_labels is None else point_labels[i].tolist(),
            None if boxes is None else boxes[i]) for i in range(n)))
        logits = torch.tensor(np.stack(masks), dtype=torch.float32) * 8 - 4
        # "predicted IoU": fixed per candidate, lowered for hollow masks (a ring of blur
        # around a nucleus) and for masks running into their box's edges (background seen
        # through a box), which SAM would not be confident about either
        solidity = [[m.sum() / max(ndimage.binary_fill_holes(m).sum(), 1) for m in three]
                    for three in masks]
        scores = (torch.tensor([[0.82, 0.95, 0.71]]) * torch.tensor(solidity, dtype=torch.float32)
                  * torch.tensor(np.array(confidence), dtype=torch.float32))
        if not multimask_output:
            return logits[:, 1:2], scores[:, 1:2]
        return logits, scores

    @staticmethod
    def _decode_one(image, points, labels, box):
        from scipy import ndimage
        from skimage.segmentation import flood

        spread = image.std()
        confidence = np.ones(3)
        positive = [p for p, label in zip(points or [], labels or []) if label == 1]
        if box is not None and not positive:  # a box alone: what stands out inside it
            x0, y0, x1, y1 = (box / 4).round().int().tolist()
            inside = image[y0:y1, x0:x1]
            masks = []
            for q in (0.3, 0.5, 0.7):
                m = np.zeros_like(image, bool)
                m[y0:y1, x0:x1] = np.abs(inside - np.median(inside)) > q * inside.std()
                masks.append(ndimage.binary_fill_holes(ndimage.binary_opening(m, iterations=2)))
        else:  # flood fill from the first positive point (inside the box when there is one)
            x, y = (min(max(int(round(v / 4)), 0), image.shape[0] - 1) for v in positive[0])
            masks = [flood(image, (y, x), tolerance=t * spread) for t in (0.35, 0.6, 0.9)]
            if box is not None:  # propagation: box + point(s)
                x0, y0, x1, y1 = (box / 4).round().int().tolist()
                clip = np.zeros_like(image, bool)
                clip[max(y0, 0):y1, max(x0, 0):x1] = True
                masks = [m & clip for m in masks]
                edge = clip & ~ndimage.binary_erosion(clip)
                confidence = np.array([1 - (m & edge).sum() / max(edge.sum(), 1) for m in masks])
            for (nx, ny), label in zip(points, labels):
                if label == 0:  # a negative click removes its region
                    for m in masks:
                        r, c = int(ny / 4), int(nx / 4)
                        if m[r, c]:
                            m &= ~flood(image, (r, c), tolerance=0.3 * spread)
        return np.stack(masks), confidence


def register_stand_in(folder: Path) -> tuple[str, Path]:
    from napari_segany.models import registry

    sys.modules.setdefault("segany_docs_stand_in", sys.modules[__name__])
    spec = registry.ModelSpec(
        name="stand_in (docs)", family="docs", task=registry.PROMPTABLE,
        builder="segany_docs_stand_in:FloodFillStandIn", file_name="stand_in.pt",
        license="(documentation stand-in, not a SAM model)", checkpoint_format="state_dict",
        description="Flood-fill stand-in used to draw the docs without network access",
    )
    registry.REGISTRY[spec.name] = spec
    path = folder / "stand_in.pt"
    torch.save(FloodFillStandIn().state_dict(), path)
    return spec.name, path


# --- shooting --------------------------------------------------------------------------------
def save(viewer, name: str) -> None:
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.02)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(shot[..., :3]).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    IMAGES.mkdir(parents=True, exist_ok=True)
    image.save(IMAGES / name, optimize=True)
    print(f"{IMAGES / name}: {(IMAGES / name).stat().st_size // 1024} KiB")


def open_viewer(sample: str, widget_name: str = "Segment Anything"):
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(*WINDOW)
    viewer.open_sample("napari-segany", sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", widget_name)
    return viewer, widget


def scroll_to(widget, child) -> None:
    """Scroll the dock (napari wraps tall dock widgets in a QScrollArea) so ``child`` shows."""
    from qtpy.QtWidgets import QApplication, QScrollArea

    QApplication.processEvents()
    parent = widget.parent()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parent()
    if parent is not None:
        parent.ensureWidgetVisible(child, 0, 0)


def shoot_interactive(model: str, checkpoint: str | None) -> None:
    # 1. one click on the cell: live preview, best of three candidates
    viewer, widget = open_viewer("cell_2d")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    widget.segment(points=[[373, 426]])
    viewer.reset_view()
    save(viewer, "click-preview.png")
    # 2. commit it (C), then the dark halo around it as a second object
    widget.commit()
    widget.segment(points=[[373, 350]])
    widget.commit()
    viewer.layers["SegAny preview"].visible = True
    save(viewer, "committed.png")
    viewer.close()


def shoot_zstack(model: str, checkpoint: str | None) -> None:
    # 3. boxes on a z-stack: each box is an object; the slider picks the slice
    viewer, widget = open_viewer("nuclei_zstack")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    viewer.dims.set_current_step(0, 12)
    widget.segment(boxes=[[20, 20, 90, 90], [140, 150, 220, 230], [30, 150, 100, 240]])
    viewer.reset_view()
    save(viewer, "boxes-zstack.png")
    # 4. the embedding worker: progress bar and Cancel while the viewer stays usable
    viewer.dims.set_current_step(0, 3)
    from napari_segany.engine.embeddings.encoding import encoder_steps

    hooks = [b.register_forward_pre_hook(lambda *_: time.sleep(0.5))
             for b in encoder_steps(widget.predictor.model)]
    widget.prompts.add_points([[3, 128, 128]])
    deadline = time.monotonic() + 10
    from qtpy.QtWidgets import QApplication

    while widget.progress.value() < 40 and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    save(viewer, "embedding-progress.png")
    widget.wait()
    for h in hooks:
        h.remove()
    viewer.close()


def shoot_everything(model: str, checkpoint: str | None) -> None:
    # 5. Segment Everything (SAM's point grid) on a slice of the nuclei z-stack, live filters
    viewer, widget = open_viewer("nuclei_zstack", "Segment Everything")
    viewer.window.resize(*WINDOW)
    viewer.dims.set_current_step(0, 12)
    widget.set_method("grid")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    widget.run(all_slices=False)  # the filters keep their microscopy defaults
    viewer.layers["SegAny everything"].opacity = 0.8
    viewer.reset_view()
    scroll_to(widget, widget.count_label)
    save(viewer, "everything-grid.png")
    viewer.close()


def _propagation_seed(stack: np.ndarray) -> tuple[int, int, int]:
    """(z, row, col) deep inside a nucleus of the sample that begins and ends inside the stack
    and away from its sides (found by thresholding the stack), on its middle slice."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(stack.astype(np.float32), (0.5, 1.5, 1.5))
    components, _ = ndimage.label(smooth > threshold_otsu(smooth))
    boxes = ndimage.find_objects(components)
    depth, height, width = stack.shape

    def inner(where):
        z, y, x = where
        return (z.start > 0 and z.stop < depth and y.start > 5 and x.start > 5
                and y.stop < height - 5 and x.stop < width - 5)

    best = max((i for i, where in enumerate(boxes) if inner(where)),
               key=lambda i: boxes[i][0].stop - boxes[i][0].start)
    z = (boxes[best][0].start + boxes[best][0].stop) // 2
    distance = ndimage.distance_transform_edt(components[z] == best + 1)
    row, col = np.unravel_index(int(distance.argmax()), distance.shape)
    return z, int(row), int(col)


def shoot_propagation(model: str, checkpoint: str | None) -> None:
    # 6. one nucleus clicked and committed on a middle slice, then propagated through z
    viewer, widget = open_viewer("nuclei_zstack")
    viewer.window.resize(*WINDOW)
    image = viewer.layers[0]
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    z, row, col = _propagation_seed(np.asarray(image.data))
    viewer.dims.set_current_step(0, z)
    widget.segment(points=[[row, col]])
    widget.commit()
    widget.propagate(wait=True)
    labels = viewer.layers["SegAny labels"]
    print("propagated object on slices", sorted(set(np.nonzero(labels.data)[0].tolist())))
    for name in ("SegAny points", "SegAny boxes", "SegAny preview"):
        viewer.layers[name].visible = False
    # 3D: the clicked slice as a plane, the object going through it above and below
    viewer.dims.ndisplay = 3
    image.depiction = "plane"
    image.plane.position = (z, *(np.asarray(image.data.shape[1:]) / 2))
    image.plane.normal = (1, 0, 0)
    labels.opacity = 0.9
    image.opacity = 0.7  # the object shows faintly below the plane too
    viewer.reset_view()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.set_view_direction((1, 1.5, 0.5), (-1.5, 1, 0))  # (z, y, x): oblique, from above
    camera.center = tuple(np.mean(np.nonzero(labels.data), axis=1) * np.asarray(labels.scale))
    camera.zoom = 5
    viewer.layers.selection.active = labels
    scroll_to(widget, widget.propagation.status_label)
    save(viewer, "propagation-3d.png")
    viewer.close()


def shoot_store(model: str, checkpoint: str | None, folder: Path) -> None:
    # 7. the "Embeddings on disk and tiling" panel, after one slice was embedded into a store
    viewer, widget = open_viewer("cell_2d")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    widget.store_panel.set_folder(folder / "embeddings")
    widget.compute_embedding()
    widget.segment(points=[[373, 426]])
    viewer.reset_view()
    scroll_to(widget, widget.store_panel)
    save(viewer, "store-panel.png")
    viewer.close()


SHOTS = ("interactive", "zstack", "everything", "propagation", "store", "workflows")


def shoot(model: str, checkpoint: str | None, folder: Path, only=SHOTS) -> None:
    torch.set_num_threads(2)
    for name in only:
        if name == "store":
            shoot_store(model, checkpoint, folder)
        elif name == "workflows":  # the workflow docks (docs/workflow_screenshots.py)
            sys.path.insert(0, str(HERE))
            from workflow_screenshots import shoot_workflows

            shoot_workflows(model, checkpoint, folder, save, scroll_to)
        else:
            globals()[f"shoot_{name}"](model, checkpoint)


def main() -> None:
    import os

    global IMAGES
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="registry model (default: mobile_sam if "
                        "its weights are in the cache, else the stand-in)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--only", nargs="+", choices=SHOTS, default=SHOTS,
                        help="make only these groups of screenshots")
    parser.add_argument("--out", type=Path, default=HERE / "images", help="folder of the PNGs")
    args = parser.parse_args()
    IMAGES = args.out
    with tempfile.TemporaryDirectory() as tmp:
        # the screenshots' embeddings go to a throw-away store, not the user's cache
        os.environ["NAPARI_SEGANY_STORE"] = str(Path(tmp) / "store")
        from napari_segany.engine.weights import weights_present

        model, checkpoint = args.model, args.checkpoint
        if model is None and weights_present("mobile_sam"):
            model = "mobile_sam"
        if model is None:
            model, path = register_stand_in(Path(tmp))
            checkpoint = str(path)
            print("official weights absent: using the flood-fill stand-in")
        shoot(model, checkpoint, Path(tmp), args.only)


if __name__ == "__main__":
    main()
