"""Cold propagation against one embedding: seconds per slice / encoder seconds per slice.

Part of ``bench_propagation.py``.  For each precision (fp32, bf16), alternating in one
process so both policies see the same load:

* ``embedding``: one encode of a slice the way propagation encodes it (``encode_blocking``:
  ``iter_encode``'s helper thread), median of a few, measured right before each pair;
* ``overlap``: a cold run with ``prefetch=2`` (the prefetch thread encodes
  the next slices while the walk decodes, both with all of torch's intra-op threads);
* ``on demand``: the engine's default, ``prefetch=0``: a slice is encoded only once the walk
  asks for it, never beside a decode (cost: encoder + decoder, no competition).

Per run: wall s / decoded slice, the ratio to the embedding, and where the time went
(encoder calls, decoder calls, the walk waiting for an embedding).
"""
from __future__ import annotations

import os
import statistics
import time

from napari_segany.engine.propagation import prefetch as prefetch_module

#: policy name -> the ``prefetch`` argument of the run
POLICIES = {"overlap": 2, "on demand": 0}


class Spans:
    """Wall-clock spans of the encoder (prefetcher), decoder and waits, by patching."""

    def __init__(self):
        from napari_segany.engine.interactive import Predictor

        self.targets = [(prefetch_module.EmbeddingPrefetcher, "_encode", "encode"),
                        (Predictor, "decode_lowres", "decode"),
                        (prefetch_module.EmbeddingPrefetcher, "get", "wait")]
        self.spans = {name: [] for *_, name in self.targets}
        self.saved = []

    def __enter__(self):
        for owner, attr, name in self.targets:
            self.saved.append((owner, attr, owner.__dict__[attr]))
            setattr(owner, attr, _recorded(self.spans[name], owner.__dict__[attr]))
        return self

    def __exit__(self, *exc):
        for owner, attr, func in self.saved:
            setattr(owner, attr, func)

    def totals(self) -> dict:
        return {name: sum(b - a for a, b in spans) for name, spans in self.spans.items()}


def _recorded(store, func):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            store.append((t0, time.perf_counter()))
    return wrapper


def embedding_s(model, volume, reps: int = 3) -> float:
    from napari_segany.engine.embeddings.encoding import encode_blocking
    from napari_segany.engine.images import to_uint8_rgb
    from napari_segany.engine.interactive import Predictor

    predictor = Predictor(model)
    times = []
    for i in range(reps):
        rgb = to_uint8_rgb(volume[i % len(volume)])
        t0 = time.perf_counter()
        encode_blocking(predictor, rgb)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold_run(volume, seed_mask, model, prefetch: int) -> dict:
    import napari_segany as nsa
    from napari_segany.engine.embeddings import EmbeddingCache
    from napari_segany.engine.propagation import StopRules

    rules = StopRules(min_score=None, max_area_ratio=None, stop_on_empty=False)
    load = os.getloadavg()[0]
    with Spans() as spans:
        t0 = time.perf_counter()
        result = nsa.propagate(volume, seed_mask, len(volume) // 2, model, rules=rules,
                               cache=EmbeddingCache(), prefetch=prefetch)
        wall = time.perf_counter() - t0
    decoded = len(result.reports) - 1
    totals = spans.totals()
    return {"s_per_slice": wall / decoded, "encoded": result.encoded, "load": load,
            **{f"{k}_s_per_slice": v / decoded for k, v in totals.items()}}


def cold_ratios(model_for, volume, seed_mask, precisions=("fp32", "bf16"), pairs: int = 2) -> dict:
    """{precision: [{"embedding_s", policy: run, ...}, ...]}: ``pairs`` alternations each."""
    out = {}
    for precision in precisions:
        model = model_for(precision)
        embedding_s(model, volume, 1)  # warm-up (first-call costs)
        rows = []
        for k in range(pairs):
            row = {"embedding_s": embedding_s(model, volume)}
            order = list(POLICIES.items())
            for name, prefetch in order if k % 2 == 0 else order[::-1]:
                row[name] = cold_run(volume, seed_mask, model, prefetch)
            rows.append(row)
        out[precision] = rows
    return out


def cold_table(ratios: dict, slices: int, side: int) -> str:
    lines = [f"| cold propagation, mobile_sam, {slices} x {side}^2 | policy | s / slice | "
             "embedding s | ratio | encode / decode / wait s per slice | load avg (1 min) |",
             "|---|---|---|---|---|---|---|"]
    for precision, rows in ratios.items():
        for row in rows:
            for name in POLICIES:
                r = row[name]
                lines.append(
                    f"| {precision} | {name} | {r['s_per_slice']:.3f} | {row['embedding_s']:.3f} | "
                    f"{r['s_per_slice'] / row['embedding_s']:.2f} | {r['encode_s_per_slice']:.3f} / "
                    f"{r['decode_s_per_slice']:.3f} / {r['wait_s_per_slice']:.3f} | {r['load']:.1f} |")
    return "\n".join(lines) + "\n"
