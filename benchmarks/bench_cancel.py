"""How long a cancel takes to stop everything mode (issue 14: within 1 s).

    python benchmarks/bench_cancel.py [--repeats 5] [--threads 2]

mobile_sam with random weights on a 1024 x 1024 image, SAM grid 32 x 32 (batches of 64
prompts): the job runs in a thread, as in the dock's worker; the cancel event (what the
dock's Cancel button sets) is set at a random moment of the decoding phase, and the time until
the job has raised ``Cancelled`` (its decoder pool closed) is the latency.  Prints each
latency, the median and the maximum, with the load average.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time

import numpy as np
import torch

from _models import random_mobile_sam
from napari_segany.engine.errors import Cancelled
from napari_segany.engine.everything import iter_segment_everything


def one_cancel(model, image, embedding, delay: float) -> float:
    cancel, stopped, started = threading.Event(), threading.Event(), threading.Event()

    def work():
        try:
            for report in iter_segment_everything(image, model, "grid", embedding=embedding,
                                                  cancel=cancel, points_per_batch=64):
                if report.message.startswith("decoding"):
                    started.set()
        except Cancelled:
            stopped.set()

    thread = threading.Thread(target=work)
    thread.start()
    started.wait()
    time.sleep(delay)
    t0 = time.perf_counter()
    cancel.set()
    thread.join()
    if not stopped.is_set():
        raise RuntimeError("the job ended before the cancel: use a shorter delay")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = random_mobile_sam()
    image = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    from napari_segany import Predictor

    predictor = Predictor(model)
    predictor.set_image(image)
    embedding = predictor.embedding  # the decoding phase only: what a cancel interrupts
    rng = random.Random(0)
    load = os.getloadavg()
    latencies = [one_cancel(model, image, embedding, rng.uniform(0.2, 3.0))
                 for _ in range(args.repeats)]
    print("cancel -> stopped (s):", " ".join(f"{x:.3f}" for x in latencies))
    print(f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s; "
          f"{args.threads} threads; load average {load[0]:.2f} -> {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
