"""Defaults for microscopy, shared by the GUI and the command line.

The methods keep their official defaults (SAM's generator, MobileSAMv2, FastSAM), which
are also what the parity tests reproduce.  What differs for microscopy is the cleaning
*after* the run, where a field of view differs from a photograph:

* specks: debris, noise and single bright pixels become tiny masks -> ``min_area`` 50 px
  (a nucleus at 20x covers a few hundred pixels of a 1024 x 1024 field; raise it for
  larger objects, lower it for bacteria or puncta);
* the background: one mask usually covers the empty glass between cells -> masks larger
  than ``max_area_fraction`` (half the field) are dropped; set 1.0 for close-ups of
  single cells;
* parts of objects (a nucleus inside its cell) are kept by default: the label image paints
  smaller masks on top, so the whole keeps its visible rim; ``max_contained`` 0.9 removes
  such parts instead.

:class:`FilterSettings` is applied with :meth:`EverythingResult.filter` and never
recomputes anything.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .result import EverythingResult

@dataclass
class FilterSettings:
    """Post-filters; None switches one off.  Areas in pixels of the 2D image."""

    min_area: int = 50
    max_area_fraction: float | None = 0.5
    min_score: float | None = None
    min_stability: float | None = None
    max_contained: float | None = None

    def apply(self, result: EverythingResult) -> EverythingResult:
        """The records that pass, as a new result (the original keeps all of them)."""
        h, w = result.image_shape
        max_area = None if self.max_area_fraction is None else int(self.max_area_fraction * h * w)
        return result.filter(min_area=int(self.min_area), max_area=max_area,
                             min_score=self.min_score, min_stability=self.min_stability,
                             max_contained=self.max_contained)

    def as_dict(self) -> dict:
        return asdict(self)


#: No filtering at all (what the engine returns).
NO_FILTERS = FilterSettings(min_area=0, max_area_fraction=None)
