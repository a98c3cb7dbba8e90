"""Main-thread cost of the Segment Everything dock's live feature filters (issue 16).

A synthetic 1024 x 1024 result with N disk masks (no model): the worker-side measuring
(``result_features``); per filter change, the worker's selection (feature ranges +
FilterSettings, ``selection.select``) and painting (``selection.paint``), then what the main
thread does: copying the painted slice into the layer (``layers.write_slice``) and setting
``layer.features`` (the widget's ``_show_features``).  Prints a table (median of repeats,
ms).  Run on a quiet machine:  python benchmarks/bench_everything_features.py [N ...]
"""
from __future__ import annotations

import sys
import time

import numpy as np
from napari.layers import Labels

from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.presets import FilterSettings
from napari_segany.engine.everything.result import EverythingResult, Record
from napari_segany.engine.workflows.mask_features import result_features
from napari_segany.gui.everything.layers import write_slice
from napari_segany.gui.everything.results import ResultView
from napari_segany.gui.everything.selection import SliceInput, paint, select

SHAPE = (1024, 1024)


def synthetic(n: int, seed: int = 0) -> tuple[EverythingResult, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, SHAPE).astype(np.float32)
    records = []
    for _ in range(n):
        r = int(rng.integers(6, 30))
        cy, cx = (int(v) for v in rng.integers(r, SHAPE[0] - r, 2))
        mask = np.zeros(SHAPE, bool)
        yy, xx = np.ogrid[cy - r:cy + r, cx - r:cx + r]
        mask[cy - r:cy + r, cx - r:cx + r] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        records.append(Record(CompactMask.from_dense(mask), {
            "area": int(mask.sum()), "predicted_iou": float(rng.random()),
            "stability_score": float(rng.random())}))
    return EverythingResult(records, SHAPE, "grid"), image


def median_ms(call, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main(counts) -> None:
    print(f"{'masks':>6} {'measure (worker)':>17} {'select (worker)':>16} "
          f"{'paint (worker)':>15} {'copy (main)':>12} {'features (main)':>16}")
    settings = FilterSettings(min_area=0, max_area_fraction=None)
    for n in counts:
        result, image = synthetic(n)
        t0 = time.perf_counter()
        table = result_features(result, image)
        measure = 1000 * (time.perf_counter() - t0)
        view = ResultView()
        layer = Labels(np.zeros(SHAPE, np.uint16))
        view.add({(): result}, {(): table})
        inp = view.input(())
        ranges = {"circularity": (0.5, None), "area": (float(np.median(table["area"])), None)}
        select_ms = median_ms(lambda: select(inp, settings, ranges))
        chosen = select(inp, settings, ranges)
        paint_ms = median_ms(lambda: paint(inp, chosen))
        labels = paint(inp, chosen)
        copy_ms = median_ms(lambda: (write_slice(layer, (), labels), layer.refresh()))
        view.accept({(): chosen})
        features = median_ms(lambda: setattr(layer, "features", view.layer_features(())))
        print(f"{n:>6} {measure:>14.0f} ms {select_ms:>13.1f} ms {paint_ms:>12.1f} ms "
              f"{copy_ms:>9.1f} ms {features:>13.1f} ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 300, 1000])
