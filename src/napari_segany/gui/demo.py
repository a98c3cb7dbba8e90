"""``python -m napari_segany.gui.demo``: napari with a bundled sample and a widget docked.

What ``tox -e napari`` runs, so that a first look at the plugin needs no data and no clicks.
"""
from __future__ import annotations

import argparse

PLUGIN = "napari-segany"
SAMPLES = ("cell_2d", "nuclei_zstack", "cell_timeseries")
WIDGETS = ("Segment Anything", "Segment Everything")


def open_demo(viewer=None, sample: str = "cell_2d", widget: str = "Segment Anything"):
    """Open ``sample`` (a key of the manifest's sample data) in ``viewer`` (a new one if None)
    and dock ``widget``; return the viewer."""
    import napari

    viewer = viewer if viewer is not None else napari.Viewer()
    viewer.open_sample(PLUGIN, sample)
    viewer.window.add_plugin_dock_widget(PLUGIN, widget)
    return viewer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m napari_segany.gui.demo",
                                     description="napari with a sample image and a segany widget")
    parser.add_argument("--sample", choices=SAMPLES, default="cell_2d")
    parser.add_argument("--widget", choices=WIDGETS, default="Segment Anything")
    args = parser.parse_args(argv)
    import napari

    open_demo(sample=args.sample, widget=args.widget)
    napari.run()


if __name__ == "__main__":
    main()
