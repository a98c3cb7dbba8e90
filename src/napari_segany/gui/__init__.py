"""The napari front end: the Segment Anything dock (``interactive/``), the Segment Everything
dock (``everything/``) and what both use (``shared/``); ``demo`` opens napari with a sample."""
