"""``Predictor``: SAM's ``SamPredictor`` interface for every promptable model of the registry.

Coordinates are **x, y pixels of the image given to** :meth:`Predictor.set_image`, as in
SamPredictor (napari's row/col points convert with :func:`napari_segany.engine.interactive.prompts.rc_to_xy`).
Boxes are ``x0, y0, x1, y1``.

For interactive use, :meth:`Predictor.decode_lowres` + :meth:`Predictor.upsample` decode the
prompts and upsample only the mask that will be shown, instead of all three candidates.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import PromptError
from ..images import to_uint8_rgb
from .prompts import check_box, check_points
from .transforms import transform_for


class Predictor:
    """Compute an image embedding once, then decode any number of prompts against it."""

    def __init__(self, model: torch.nn.Module):
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ValueError("Predictor needs a model from napari_segany.load_model(...).")
        self.model = model
        self.spec = spec
        self.transform = transform_for(spec)
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- image -----------------------------------------------------------------------------
    def set_image(self, image, image_format: str = "RGB", contrast_limits=None) -> None:
        """Embed one 2D image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), any int/float dtype.

        Non-uint8 images are mapped to 0..255 by ``contrast_limits`` (lo, hi) if given, else by
        the 0.5/99.5 percentiles (see :mod:`napari_segany.engine.images.intensity`).
        """
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR'; got {image_format!r}.")
        rgb = to_uint8_rgb(image, contrast_limits)
        if image_format == "BGR":
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        self.set_embedding(self.encode(rgb), rgb.shape[:2])

    def encode(self, rgb: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, C, h, w) image embedding (no state is changed)."""
        x, _ = self.transform.to_model_input(rgb, self.device)
        with torch.inference_mode():
            return self.model.encode(x)

    def set_embedding(self, features: torch.Tensor, original_size: tuple[int, int]) -> None:
        """Use a precomputed embedding (e.g. from the cache) for an image of ``original_size``."""
        self.features = features.to(self.device)
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = self.transform.input_size(self.original_size)
        self.is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """The (1, C, h, w) embedding of the current image."""
        self._require_image()
        return self.features

    def reset_image(self) -> None:
        self.features = None
        self.original_size = None
        self.input_size = None
        self.is_image_set = False

    # --- transform helpers (SamPredictor users call predictor.transform.apply_coords) -----------
    def apply_coords(self, coords) -> np.ndarray:
        """x, y in original pixels -> model-input frame, for the current image."""
        self._require_image()
        return self.transform.apply_coords(coords, self.original_size)

    def apply_boxes(self, boxes) -> np.ndarray:
        self._require_image()
        return self.transform.apply_boxes(boxes, self.original_size)

    # --- decoding -----------------------------------------------------------------------------
    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False):
        """Decode one prompt set. Returns numpy ``(masks (C, H, W), scores (C,), low_res (C, h, w))``.

        ``masks`` are bool (logits > 0) unless ``return_logits``; C = 3 if multimask_output else 1.
        """
        low_res, iou = self.decode_lowres(point_coords, point_labels, box, mask_input, multimask_output)
        masks = self.upsample(low_res, return_logits=return_logits)
        return (masks[0].cpu().numpy(), iou[0].float().cpu().numpy(), low_res[0].float().cpu().numpy())

    def decode_lowres(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                      multimask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate one prompt set in original pixels and decode it: (1, C, h, w) logits, (1, C)."""
        self._require_image()
        coords, labels = check_points(point_coords, point_labels, self.original_size)
        box = check_box(box, self.original_size)
        if coords is None and box is None:
            raise PromptError("Give at least one point or a box to segment.")
        coords_t = labels_t = box_t = mask_t = None
        if coords is not None:
            coords_t = self._tensor(self.transform.apply_coords(coords, self.original_size))[None]
            labels_t = torch.as_tensor(labels, dtype=torch.int64, device=self.device)[None]
        if box is not None:
            box_t = self._tensor(self.transform.apply_boxes(box, self.original_size))
        if mask_input is not None:
            mask_t = self._mask_input(mask_input)
        return self._decode(coords_t, labels_t, box_t, mask_t, multimask_output)

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None,
                      multimask_output: bool = True, return_logits: bool = False):
        """Batched prompts already in the model-input frame (see ``transform.apply_coords_torch``).

        point_coords (B, N, 2), point_labels (B, N), boxes (B, 4), mask_input (B, 1, h, w).
        Returns torch ``(masks (B, C, H, W), iou (B, C), low_res (B, C, h, w))``.
        """
        self._require_image()
        if mask_input is not None and not self.spec.supports_mask_input:
            raise PromptError(f"{self.spec.name} takes no mask prompt (mask_input); leave it None.")
        low_res, iou = self._decode(point_coords, point_labels, boxes, mask_input, multimask_output)
        return self.upsample(low_res, return_logits=return_logits), iou, low_res

    def upsample(self, low_res: torch.Tensor, return_logits: bool = False) -> torch.Tensor:
        """(..., h, w) low-res logits -> (..., H, W) logits or bool masks at the original size."""
        self._require_image()
        shape = low_res.shape
        flat = low_res.reshape(-1, 1, *shape[-2:]).float()
        with torch.inference_mode():
            logits = self.transform.postprocess_masks(flat, self.input_size, self.original_size)
        logits = logits.reshape(*shape[:-2], *logits.shape[-2:])
        return logits if return_logits else logits > self.model.mask_threshold

    def _decode(self, coords, labels, boxes, mask_input, multimask_output):
        with torch.inference_mode():
            return self.model.decode(
                self.features, point_coords=coords, point_labels=labels, boxes=boxes,
                mask_input=mask_input, multimask_output=multimask_output,
            )

    def _mask_input(self, mask_input) -> torch.Tensor:
        if not self.spec.supports_mask_input:
            raise PromptError(f"{self.spec.name} takes no mask prompt (mask_input); leave it None.")
        side = 4 * self.features.shape[-1]
        m = torch.as_tensor(np.asarray(mask_input, dtype=np.float32), device=self.device)
        if m.shape[-2:] != (side, side) or m.numel() != side * side:
            raise PromptError(
                f"mask_input must be the ({side}, {side}) low-res logits returned by a previous "
                f"predict call; got shape {tuple(m.shape)}."
            )
        return m.reshape(1, 1, side, side)

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=torch.float32, device=self.device)

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise RuntimeError("No image is set: call set_image(image) first.")
