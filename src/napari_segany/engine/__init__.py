"""Engine: numpy/torch pipelines on top of ``models`` (no Qt, no napari).

Its parts, each a package with a small public surface, importing only the parts below it
(``docs/dev/architecture.md``; checked by import-linter):

* ``everything`` (every object of an image or a stack) and ``propagation`` (one object
  through z / t);
* ``tiling``: large images, the one tiling rule, which predictor an image gets;
* ``interactive``: prompts on one image (the predictor protocol, predictors, session,
  commit rules);
* ``detection``: YOLOv8 passes (MobileSAMv2's boxes, FastSAM's masks);
* ``embeddings``: the typed embedding, its keys, encoding, memory cache, disk store;
* ``weights`` (fetch, read safely, identify, load) and ``images`` (files, intensity);
* ``progress``, ``torch_state``, ``errors``.

This package stays empty so that importing it costs nothing.
"""
