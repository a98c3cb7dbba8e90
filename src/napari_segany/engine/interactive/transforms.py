"""Pre- and post-processing around the promptable networks (outside the networks, as in SAM).

Two families of geometry:

* :class:`LongestSideTransform` (SAM, MobileSAM): resize so the longest side is ``S`` with
  PIL bilinear on uint8 (bit-identical to SAM's ``ResizeLongestSide.apply_image``), normalise
  with the 0..255 mean/std, zero-pad bottom/right to ``S x S``.  Masks: bilinear to ``S x S``,
  crop the padding, bilinear to the original size.
* :class:`StretchTransform` (EfficientSAM): ``/255``, bilinear (no antialias) straight to
  ``S x S`` (aspect not kept, no padding), normalise with ImageNet mean/std.  Masks: bicubic
  straight from the low-res logits to the original size.
* :class:`AntialiasStretchTransform` (SAM 2): as the stretch, but the resize is antialiased
  (torchvision ``Resize`` on a float tensor), prompts are ``x / W * S`` and masks bilinear.

The *prompt frame* (``ModelSpec.input_size``, SAM: 1024) is what prompts, low-res masks and
their post-processing refer to; the encoder may take a smaller image
(``ModelSpec.encoder_input_size``, EfficientViT-SAM: 512 px in a 1024-px frame): the image
is then resized for the encoder only, and the frame stays as it is.

All coordinates here are x, y (SAM convention); shapes are (H, W).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...models.registry import ModelSpec


class LongestSideTransform:
    """SAM's ResizeLongestSide + normalise + pad."""

    def __init__(self, target_length: int, pixel_mean, pixel_std,
                 encoder_length: int | None = None):
        self.target_length = int(target_length)  # the prompt frame
        self.encoder_length = int(encoder_length or target_length)  # the encoder's input
        self.pixel_mean = torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1)
        self.pixel_std = torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """(newh, neww) with the longest side equal to ``long_side_length`` (SAM's rounding)."""
        scale = long_side_length * 1.0 / max(oldh, oldw)
        return int(oldh * scale + 0.5), int(oldw * scale + 0.5)

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        return self.get_preprocess_shape(*original_size, self.target_length)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (newh, neww, 3) uint8 for the encoder, PIL bilinear as SAM's
        set_image (longest side: the encoder's input)."""
        newh, neww = self.get_preprocess_shape(*image.shape[:2], self.encoder_length)
        if (newh, neww) == image.shape[:2]:
            return image
        return np.array(Image.fromarray(image).resize((neww, newh), Image.BILINEAR))

    def to_model_input(self, image: np.ndarray, device=None) -> tuple[torch.Tensor, tuple[int, int]]:
        """(H, W, 3) uint8 RGB -> ((1, 3, E, E) float32 normalised and padded, (newh, neww)),
        E the encoder's input side."""
        resized = self.apply_image(image)
        x = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float()
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        x = F.pad(x, (0, self.encoder_length - w, 0, self.encoder_length - h))
        return x[None].to(device) if device is not None else x[None], (h, w)

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """x, y in original pixels -> x, y in the resized frame (float64, as SAM's apply_coords)."""
        old_h, old_w = original_size
        new_h, new_w = self.input_size(original_size)
        coords = np.array(coords, dtype=float, copy=True)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """(..., 4) x0, y0, x1, y1 boxes -> resized frame."""
        boxes = np.asarray(boxes, dtype=float)
        return self.apply_coords(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_coords_torch(self, coords: torch.Tensor, original_size) -> torch.Tensor:
        """As :meth:`apply_coords` in float32 torch arithmetic (SAM's apply_coords_torch)."""
        old_h, old_w = original_size
        new_h, new_w = self.input_size(original_size)
        coords = coords.clone().to(torch.float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size) -> torch.Tensor:
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def postprocess_masks(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """(B, C, h, w) low-res logits -> (B, C, H, W) logits at the original size."""
        size = self.target_length
        masks = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        if tuple(masks.shape[-2:]) == tuple(original_size):
            return masks  # same-size bilinear resampling is the identity: skip it
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)

    def upsample_steps(self, input_size, original_size):
        """:meth:`postprocess_masks` as one interpolation ``(mode, out_size, keep)`` (see
        :mod:`.mask_region`), or None when it takes two (an image of another size than the
        resized frame)."""
        if tuple(input_size) != tuple(original_size):
            return None
        return "bilinear", (self.target_length, self.target_length), tuple(input_size)


class StretchTransform(LongestSideTransform):
    """EfficientSAM: stretch to a square without padding; bicubic mask upsampling."""

    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        return self.target_length, self.target_length

    def to_model_input(self, image: np.ndarray, device=None) -> tuple[torch.Tensor, tuple[int, int]]:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)[None]
        size = (self.encoder_length, self.encoder_length)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size, mode="bilinear", align_corners=False)
        x = (x - self.pixel_mean) / self.pixel_std
        return (x.to(device) if device is not None else x), size

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        # As EfficientSAM's get_rescaled_pts: float32 x * S / W (multiply first), and negative
        # coordinates mean "no point" (-1).
        coords = np.asarray(coords, dtype=np.float32)
        scale = np.array([original_size[1], original_size[0]], dtype=np.float32)
        scaled = coords * np.float32(self.target_length) / scale
        return np.where(coords >= 0, scaled, np.float32(-1.0))

    def apply_coords_torch(self, coords: torch.Tensor, original_size) -> torch.Tensor:
        coords = coords.to(torch.float)
        scale = torch.tensor([original_size[1], original_size[0]], dtype=torch.float)
        scaled = coords * self.target_length / scale
        return torch.where(coords >= 0, scaled, torch.full_like(scaled, -1.0))

    def postprocess_masks(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        return F.interpolate(low_res, tuple(original_size), mode="bicubic", align_corners=False)

    def upsample_steps(self, input_size, original_size):
        return "bicubic", tuple(original_size), tuple(original_size)


class AntialiasStretchTransform(StretchTransform):
    """SAM 2's ``SAM2Transforms``: ``/255``, bilinear *antialiased* resize of the float
    tensor straight to ``S x S`` (aspect not kept, no padding), ImageNet mean/std on 0..1.
    Prompts: float32 ``x / W * S``, ``y / H * S`` (divide first).  Masks: bilinear straight
    from the low-res logits to the original size (no crop: there is no padding)."""

    def to_model_input(self, image: np.ndarray, device=None) -> tuple[torch.Tensor, tuple[int, int]]:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)[None]
        size = (self.target_length, self.target_length)
        x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.pixel_mean) / self.pixel_std
        return (x.to(device) if device is not None else x), size

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float32)
        scale = np.array([original_size[1], original_size[0]], dtype=np.float32)
        return (coords / scale) * np.float32(self.target_length)

    def apply_coords_torch(self, coords: torch.Tensor, original_size) -> torch.Tensor:
        scale = torch.tensor([original_size[1], original_size[0]], dtype=torch.float,
                             device=coords.device)
        return (coords.to(torch.float) / scale) * self.target_length

    def postprocess_masks(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        return F.interpolate(low_res, tuple(original_size), mode="bilinear", align_corners=False)

    def upsample_steps(self, input_size, original_size):
        return "bilinear", tuple(original_size), tuple(original_size)


def transform_for(spec: ModelSpec) -> LongestSideTransform:
    """The transform a promptable model's spec asks for."""
    kinds = {"longest_side": LongestSideTransform, "stretch": StretchTransform,
             "stretch_antialias": AntialiasStretchTransform}
    try:
        kind = kinds[spec.preprocessing]
    except KeyError:
        raise ValueError(
            f"{spec.name} is not a promptable model (preprocessing {spec.preprocessing!r}); "
            "use detect_objects or segment_everything(method='fastsam') for it."
        ) from None
    return kind(spec.input_size, spec.pixel_mean, spec.pixel_std, spec.encoder_size)
