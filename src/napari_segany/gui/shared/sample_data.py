"""npe2 sample-data contributions (offline)."""
from __future__ import annotations

from ...engine.images import samples


def cell_2d():
    return [(samples.cell_2d(), {"name": "cell (2D)"}, "image")]


def nuclei_zstack():
    return [(samples.nuclei_zstack(), {"name": "nuclei z-stack (ZYX)", "scale": (2.0, 1.0, 1.0),
                                        "axis_labels": ("z", "y", "x")}, "image")]


def cell_timeseries():
    return [(samples.cell_timeseries(), {"name": "cell time series (TYX)",
                                          "axis_labels": ("t", "y", "x")}, "image")]
