"""The plugin's main-thread changes against the ways they replaced, alternated in one viewer
(a shown napari under Xvfb, 1366 x 768, a 1024 x 1024 image): the longest gap of the
``bench_stalls`` probe for each, so that a loaded machine weighs on both alike.

* everything result layer for an image of another shape: removed and added again / emptied
  to the new shape (``everything.layers.ensure_result_layer``);
* a million label pixels of a workflow job: one ``data_setitem`` / in timed steps as one
  undo step (``JobPanel.write``).

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_stalls_ab.py [--rounds 4]
"""
from __future__ import annotations

import argparse
import os
import statistics

import numpy as np

from bench_stalls import StallProbe, cells, settle


def longest_gap(action) -> float:
    with StallProbe() as probe:
        action()
    return probe.summary()[0]


def result_layer_pair(viewer):
    from napari_segany.gui.everything.layers import RESULT_MARK

    shapes = [(1024, 1024), (24, 512, 512)]
    state = {"i": 0}

    def next_shape():
        state["i"] += 1
        return shapes[state["i"] % 2]

    def ours():
        return next(layer for layer in viewer.layers if layer.metadata.get(RESULT_MARK))

    def old():
        viewer.layers.remove(ours())
        shape = next_shape()
        viewer.add_labels(np.zeros(shape, np.uint16), opacity=0.6, metadata={RESULT_MARK: True})

    def new():
        layer, shape = ours(), next_shape()
        layer.data = np.zeros(shape, np.uint16)
        layer.scale, layer.translate = (1,) * len(shape), (0,) * len(shape)

    viewer.add_labels(np.zeros(shapes[0], np.uint16), metadata={RESULT_MARK: True})
    return {"result layer, other shape: remove + add": (None, old),
            "result layer, other shape: emptied": (None, new)}


def write_pair(viewer):
    from napari_segany.gui.workflows.pixel_writes import PixelWrite

    layer = viewer.add_labels(np.zeros((1024, 1024), np.uint32), name="target")
    where = np.nonzero(np.ones((1024, 1024), bool))  # every pixel: ~1 million
    value = {"v": 1}

    def old():
        value["v"] += 1
        with layer.block_history():
            layer.data_setitem(where, value["v"])

    def new():
        value["v"] += 1
        done = []
        PixelWrite(layer, where, value["v"], done.append, lambda exc: done.append(exc))
        while not done:
            settle(0.01)

    return {"1M pixels: one data_setitem": (None, old),
            "1M pixels: timed steps": (None, new)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1366, 768)
    viewer.add_image(cells(1024), name="cells 1024")
    settle(1.0)
    gaps: dict[str, list[float]] = {}
    for make in (result_layer_pair, write_pair):
        pair = make(viewer)
        settle(0.5)
        for _ in range(args.rounds):  # A, B, A, B, ...
            for name, (prepare, action) in pair.items():
                if prepare is not None:
                    prepare()
                gaps.setdefault(name, []).append(longest_gap(action))
    load = os.getloadavg()
    viewer.close()
    print(f"load average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}\n")
    print("| change | longest gap, median | each round |\n|---|---|---|")
    for name, values in gaps.items():
        print(f"| {name} | {statistics.median(values):.0f} ms | "
              f"{', '.join(f'{v:.0f}' for v in values)} |")


if __name__ == "__main__":
    main()
