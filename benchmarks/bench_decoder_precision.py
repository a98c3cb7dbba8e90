"""The mask decoder in float32 and in bfloat16: click -> mask latency and accuracy.

    python benchmarks/bench_decoder_precision.py [--models mobile_sam efficient_sam_vitt]
        [--runs 40] [--threads 2]

Per model, on one embedding (float32 encoder): the GUI's click path (``decode_lowres`` of
one point + ``upsample`` of the best candidate), median of ``runs`` alternating runs with
the float32 decoder and with a bfloat16 copy of the prompt encoder + mask decoder (fed the
embedding cast to bfloat16), and the IoU of every candidate mask of 16 clicks against
float32 with the largest |predicted IoU difference|.  SAM ViT-B/L/H and MobileSAM share
one decoder architecture: ``mobile_sam`` stands for all four.  The decoder kept in the
code is float32 (see the report this script prints).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

import napari_segany as nsa
from bench_core import PARITY
from bench_peak import load_average
from bench_precision import build


def test_image() -> np.ndarray:
    """A natural image (the parity set's chelsea) when available, else seeded noise."""
    path = PARITY / "images" / "skimage_chelsea.png"
    if path.exists():
        from PIL import Image

        return np.array(Image.open(path).convert("RGB"))
    return np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8)


def bf16_decoder_predictor(model, reference: nsa.Predictor) -> nsa.Predictor:
    """A Predictor whose prompt encoder and mask decoder run in bfloat16, on the reference
    predictor's embedding (cast), so only the decoder's precision differs."""
    model16 = copy.deepcopy(model)
    model16.prompt_encoder.to(torch.bfloat16)
    model16.mask_decoder.to(torch.bfloat16)
    predictor = nsa.Predictor(model16)
    predictor.set_embedding(reference.features.to(torch.bfloat16), reference.original_size)
    return predictor


def click_to_mask(predictor: nsa.Predictor, xy) -> torch.Tensor:
    low_res, iou = predictor.decode_lowres([xy], [1])
    return predictor.upsample(low_res[0, int(iou[0].argmax())])


def accuracy(p32: nsa.Predictor, p16: nsa.Predictor, clicks) -> tuple[list[float], float]:
    ious, worst = [], 0.0
    for xy in clicks:
        m32, s32, _ = p32.predict(point_coords=[xy], point_labels=[1])
        m16, s16, _ = p16.predict(point_coords=[xy], point_labels=[1])
        for a, b in zip(m32, m16):
            union = np.logical_or(a, b).sum()
            ious.append(1.0 if union == 0 else np.logical_and(a, b).sum() / union)
        worst = max(worst, float(np.abs(s32 - s16).max()))
    return ious, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobile_sam", "efficient_sam_vitt"])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average: {load_average()}")
    image = test_image()
    h, w = image.shape[:2]
    clicks = [[float(x), float(y)] for x, y in
              np.random.default_rng(0).uniform((0, 0), (w, h), size=(16, 2))]
    rows = ["| model | fp32 decoder ms | bf16 decoder ms | mask IoU median | min | "
            "max abs IoU-pred diff |", "|---|---:|---:|---:|---:|---:|"]
    for name in args.models:
        model = build(name)
        p32 = nsa.Predictor(model)
        p32.set_image(image)
        p16 = bf16_decoder_predictor(model, p32)
        runners = {"fp32": lambda: click_to_mask(p32, clicks[0]),
                   "bf16": lambda: click_to_mask(p16, clicks[0])}
        for fn in runners.values():
            fn()
        times = {key: [] for key in runners}
        for _ in range(args.runs):
            for key, fn in runners.items():
                start = time.perf_counter()
                fn()
                times[key].append(1000 * (time.perf_counter() - start))
        ious, worst = accuracy(p32, p16, clicks)
        rows.append(f"| {name} | {statistics.median(times['fp32']):.1f} | "
                    f"{statistics.median(times['bf16']):.1f} | {np.median(ious):.4f} | "
                    f"{min(ious):.4f} | {worst:.4f} |")
        print(rows[-1], flush=True)
    print(f"\n{args.runs} alternating runs, median; load average after: {load_average()}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
