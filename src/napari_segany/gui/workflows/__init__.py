"""The workflow docks (issue 16): image series, automatic 3D objects, tracking with lineage,
object tables.

* :mod:`.series_dock` ("Image Series"): images of a folder annotated one by one, labels saved
  per image, the next image's embedding computed in the background for the Segment Anything
  dock (:mod:`.series_io`, :mod:`.segany_link`);
* :mod:`.objects3d_dock` ("3D Objects"): everything mode on every slice, linked into one id
  per object; "Link slices" for an existing per-slice Labels layer;
* :mod:`.tracking_dock` ("Tracking"): tracks with divisions, corrections
  (:mod:`.tracking_edits`), export in the Cell Tracking Challenge format;
* :mod:`.table_dock` ("Object Table"): measurements per object, row selection, live filters
  (``shared.range_filters``, :mod:`.table_filters`), CSV export.

:mod:`.common` holds what they share: layer pickers, the job panel (worker, progress bar,
Cancel) and frame-by-frame progress for blocking engine calls.  The engine functions come
from ``napari_segany.engine.workflows`` (no Qt there).
"""
