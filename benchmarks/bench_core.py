"""Headline figures of the engine against the product targets (2 cores, 1024x1024).

    python benchmarks/bench_core.py [--model mobile_sam] [--runs 10] [--threads 2]

Prints and writes ``benchmarks/results/core_<model>.json``: encoder seconds, click -> mask
and box -> mask milliseconds (decoder + upsampling of the one shown mask, as the GUI does),
and the process's peak RSS.  Weights are synthesized (seed 0, the shared recipe) in the
official layout when ``../shared/parity`` exists, else random: speed does not depend on them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import napari_segany as nsa

RESULTS = Path(__file__).parent / "results"
PARITY = Path(os.environ.get("NAPARI_SEGANY_SHARED", Path(__file__).parents[2] / "shared")) / "parity"


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synthesized_weights(name: str):
    """The shared seed-0 weights when available (a real official layout), else None."""
    synth = PARITY / "synth.py"
    if not (synth.exists() and (PARITY / name / "schema.json").exists()):
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth", synth)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synth_state_dict(module.load_schema(PARITY / name / "schema.json"))


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(seconds: list[float], scale: float = 1.0) -> dict:
    values = [s * scale for s in seconds]
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobile_sam")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1024, 1024), dtype=np.uint8)
    state = synthesized_weights(args.model)
    model = nsa.load_model(args.model, checkpoint=state, device="cpu") if state is not None else None
    if model is None:  # no shared data: same architecture, random weights
        spec = nsa.get_spec(args.model)
        model = spec.build().eval()
        model.spec, model.checkpoint_path = spec, "random"
    predictor = nsa.Predictor(model)
    predictor.set_image(image)  # warm-up: first-call allocations
    encoder = timed(lambda: predictor.set_image(image), max(3, args.runs // 3))

    def click():
        low_res, iou = predictor.decode_lowres([[512, 400]], [1])
        predictor.upsample(low_res[0, int(iou[0].argmax())])

    def box():
        low_res, iou = predictor.decode_lowres(box=[300, 250, 700, 640], multimask_output=False)
        predictor.upsample(low_res[0, 0])

    click()
    box()
    report = {
        "model": args.model, "threads": args.threads, "image": [1024, 1024],
        "loadavg": os.getloadavg(),
        "encoder_s": summary(encoder),
        "click_to_mask_ms": summary(timed(click, args.runs), 1000),
        "box_to_mask_ms": summary(timed(box, args.runs), 1000),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"core_{args.model}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
