"""Pieces both docks use: napari workers, small Qt helpers, how an image layer is read, the
Labels writer, the model picker, the tiling fields, the embedding stores of image layers,
notifications and progress wording, and the sample data."""
