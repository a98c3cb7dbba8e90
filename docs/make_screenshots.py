"""Make the user guide's screenshots with a real (shown) napari viewer under Xvfb.

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--model mobile_sam]

With the official weights in the cache (``--model mobile_sam``, the default when present) the
masks are the model's.  Without them (a machine with no network, as the one that made the
committed PNGs) the script registers a *stand-in* promptable model: the widget, the layers,
the workers and every step are the real ones, but its masks come from a flood fill of the
smoothed image around the click, not from SAM.  The user guide says which one was used.

PNGs go to docs/images/, palette-quantised to stay small.
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
WINDOW = (1400, 860)


# --- the stand-in: the promptable-model contract, masks by flood fill ---------------------------
class FloodFillStandIn(nn.Module):
    """encode() keeps a 4x-downsampled gray copy of the model input as the "embedding"
    (pixel-unshuffled to the (1, 16, 64, 64) shape of an embedding grid);
    decode() flood-fills it from the first positive point (three tolerances = three
    candidates) or thresholds the inside of the box."""

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
        from scipy import ndimage
        from skimage.segmentation import flood

        small = torch.nn.functional.pixel_shuffle(embeddings, 4)[0, 0]
        image = ndimage.gaussian_filter(small.numpy().astype(float), 1.5)
        if boxes is not None:
            x0, y0, x1, y1 = (boxes[0] / 4).round().int().tolist()
            inside = image[y0:y1, x0:x1]
            masks = []
            for q in (0.3, 0.5, 0.7):
                m = np.zeros_like(image, bool)
                m[y0:y1, x0:x1] = np.abs(inside - np.median(inside)) > q * inside.std()
                masks.append(ndimage.binary_fill_holes(ndimage.binary_opening(m, iterations=2)))
        else:
            positive = (point_labels[0] == 1).nonzero()
            x, y = (point_coords[0, int(positive[0, 0])] / 4).round().int().tolist()
            spread = image.std()
            masks = [flood(image, (y, x), tolerance=t * spread) for t in (0.35, 0.6, 0.9)]
            for (nx, ny), label in zip(point_coords[0].tolist(), point_labels[0].tolist()):
                if label == 0:  # a negative click removes its region
                    for m in masks:
                        r, c = int(ny / 4), int(nx / 4)
                        if m[r, c]:
                            m &= ~flood(image, (r, c), tolerance=0.3 * spread)
        logits = torch.tensor(np.stack(masks), dtype=torch.float32)[None] * 8 - 4
        scores = torch.tensor([[0.82, 0.95, 0.71]])
        if not multimask_output:
            return logits[:, 1:2], scores[:, 1:2]
        return logits, scores


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
    IMAGES.mkdir(exist_ok=True)
    image.save(IMAGES / name, optimize=True)
    print(f"{IMAGES / name}: {(IMAGES / name).stat().st_size // 1024} KiB")


def open_viewer(sample: str):
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(*WINDOW)
    viewer.open_sample("napari-segany", sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    return viewer, widget


def shoot(model: str, checkpoint: str | None) -> None:
    torch.set_num_threads(2)
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

    # 3. boxes on a z-stack: each box is an object; the slider picks the slice
    viewer, widget = open_viewer("nuclei_zstack")
    widget.set_model(model, checkpoint=checkpoint, device="cpu")
    viewer.dims.set_current_step(0, 12)
    widget.segment(boxes=[[20, 20, 90, 90], [140, 150, 220, 230], [30, 150, 100, 240]])
    viewer.reset_view()
    save(viewer, "boxes-zstack.png")
    # 4. the embedding worker: progress bar and Cancel while the viewer stays usable
    viewer.dims.set_current_step(0, 3)
    from napari_segany.engine.encoding import encoder_steps

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


def main() -> None:
    from napari_segany.engine.weights import weights_present

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="registry model (default: mobile_sam if "
                        "its weights are in the cache, else the stand-in)")
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, checkpoint = args.model, args.checkpoint
        if model is None and weights_present("mobile_sam"):
            model = "mobile_sam"
        if model is None:
            model, path = register_stand_in(Path(tmp))
            checkpoint = str(path)
            print("official weights absent: using the flood-fill stand-in")
        shoot(model, checkpoint)


if __name__ == "__main__":
    main()
