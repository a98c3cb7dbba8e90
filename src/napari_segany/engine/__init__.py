"""Engine: numpy/torch pipelines on top of ``models`` (no Qt, no napari).

Import the submodules directly (``napari_segany.engine.interactive``...); this
package stays empty so that importing it costs nothing.
"""
