"""The napari layer: widgets, workers, layer helpers and sample data (the only Qt/napari code)."""
