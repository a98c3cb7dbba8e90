"""Images in and out: reading files, the 2D planes of an array, the uint8 RGB a model sees.

* :mod:`.io`: image files in (TIFF, PNG/JPEG/BMP, NPY), label TIFFs out, how an array splits
  into 2D planes (:func:`plane_layout`);
* :mod:`.intensity`: any 2D image -> the (H, W, 3) uint8 RGB the models take
  (:func:`to_uint8_rgb`, the one intensity rule);
* :mod:`.samples`: small offline microscopy samples.
"""
from __future__ import annotations

from .intensity import auto_contrast, to_uint8_rgb, validate_image
from .io import PlaneLayout, list_images, plane_layout, read_image, write_labels

__all__ = ["PlaneLayout", "auto_contrast", "list_images", "plane_layout", "read_image",
           "to_uint8_rgb", "validate_image", "write_labels"]
