"""The microscopist's workflows on top of the engine (numpy / scipy / scikit-image; no Qt).

* :mod:`.slices`: per-slice labels linked into 3D objects (``link_slices``);
* :mod:`.volume`: everything mode on every slice, then linked (``segment_volume``);
* :mod:`.tracking`, :mod:`.tracks`: tracking with divisions (``track_labels``,
  ``TrackingResult``, corrections ``merge_tracks`` / ``split_track`` / ``set_parent``);
* :mod:`.ctc`: the Cell Tracking Challenge format (``write_ctc``, ``read_ctc``);
* :mod:`.features`: object tables and filters (``object_features``, ``filter_objects``,
  ``write_features_csv``);
* :mod:`.series`: an image series annotated one by one (``ImageSeries``).

:mod:`.overlap` is their shared core: sparse overlaps of two label planes and the optimal
one-to-one matching.  The public names are in ``napari_segany`` (lazy); import submodules
directly here, this package imports nothing on its own.
"""
