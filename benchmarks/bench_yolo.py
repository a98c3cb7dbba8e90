"""CPU timings of the YOLOv8 networks: FastSAM-s and the MobileSAMv2 object-aware detector.

Reports, at imgsz 1024 on a 1024x1024 image (letterbox input 1024x1024):

* forward: one network pass (fused Conv+BN, inference_mode), contiguous and channels-last;
* everything: ``fastsam_everything`` (letterbox, forward, NMS, 300 masks at full resolution)
  and ``detect_objects`` (letterbox, forward, NMS, boxes) end to end.

Wall and CPU seconds are medians over ``--repeats`` runs after one warm-up; the 1-minute load
average is printed because a shared machine inflates wall times.

    PYTHONPATH=src python benchmarks/bench_yolo.py [--fastsam FastSAM-s.pt] [--detector ObjectAwareModel.pt]

Without checkpoints it uses the real-format synthetic files of ``../shared/parity`` (same
architecture and cost as the official weights at scale s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_segany.engine.detection import detect_objects, fastsam_everything
from napari_segany.engine.detection.yolo import model_input, run_network
from napari_segany.engine.weights.ultralytics_reader import read_ultralytics_checkpoint
from napari_segany.models.yolo.build import build_yolov8
from napari_segany.models.yolo.keys import map_ultralytics_keys

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity"
DEFAULTS = {
    "fastsam": PARITY / "fastsam_s" / "FastSAM-s.synth-seed0.pt",
    "detector": PARITY / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt",
}


def load(path: Path, channel_order: str):
    """The load_model path: safe reader -> builder -> strict load -> float/eval -> fusion."""
    state_dict, config = read_ultralytics_checkpoint(path)
    model = build_yolov8(**config, input_channel_order=channel_order)
    model.load_state_dict(map_ultralytics_keys(state_dict), strict=True)
    return model.float().eval().prepare_for_inference()


def test_image(size: int = 1024) -> np.ndarray:
    """skimage's coins tiled to size x size RGB (a natural-looking microscopy-like scene)."""
    from skimage import data

    coins = data.coins()
    reps = (-(-size // coins.shape[0]), -(-size // coins.shape[1]))
    tile = np.tile(coins, reps)[:size, :size]
    return np.repeat(tile[..., None], 3, axis=2).astype(np.uint8)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of fn() after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def bench(name: str, model, image: np.ndarray, everything, repeats: int) -> None:
    x, _ = model_input(image, 1024, model.input_channel_order)
    for channels_last in (False, True):
        model.set_channels_last(channels_last)
        fwd = timed(lambda: run_network(model, x), repeats)
        full = timed(lambda: everything(image, model), repeats)
        layout = "channels-last" if channels_last else "contiguous"
        print(f"{name:10s} {layout:13s} forward {fwd[0]:6.2f} s wall {fwd[1]:6.2f} s CPU | "
              f"everything {full[0]:6.2f} s wall {full[1]:6.2f} s CPU")
    model.set_channels_last(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastsam", type=Path, default=DEFAULTS["fastsam"])
    parser.add_argument("--detector", type=Path, default=DEFAULTS["detector"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = test_image()
    print(f"torch {torch.__version__}, {args.threads} threads, image {image.shape}, "
          f"load average {os.getloadavg()[0]:.2f}")
    fastsam = load(args.fastsam, "rgb")
    n = len(fastsam_everything(image, fastsam))
    bench("fastsam_s", fastsam, image, fastsam_everything, args.repeats)
    detector = load(args.detector, "bgr")
    bench("detector", detector, image, detect_objects, args.repeats)
    print(f"({n} FastSAM objects per pass; load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
