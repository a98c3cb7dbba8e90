"""``Predictor``: SAM's ``SamPredictor`` interface for every promptable model of the registry.

Coordinates are **x, y pixels of the image given to** :meth:`Predictor.set_image`, as in
SamPredictor (napari's row/col points convert with :func:`.prompts.rc_to_xy`).
Boxes are ``x0, y0, x1, y1``.

For interactive use, :meth:`Predictor.decode_lowres` + :meth:`Predictor.upsample` decode the
prompts and upsample only the mask that will be shown, instead of all three candidates;
:meth:`Predictor.decode` + :meth:`Predictor.mask` are the same as the promptable-predictor
interface (:mod:`.protocol`) the session and the widgets use.

The image embedding is an :class:`~..embeddings.Embedding` (one or several feature levels);
:meth:`Predictor.encode` computes one without changing the predictor, so that a worker can
compute it and a cache keep it.

Low-res logits: SAM 2's official ``predict`` returns them clamped to +-32
(``ModelSpec.low_res_logit_limit``, :func:`returned_logits`) while its masks come from the
unclamped ones; :meth:`Predictor.predict` and :meth:`Predictor.predict_torch` do the same, and
a refinement feeds the clamped logits back as ``mask_input``, as a user of the official
predictor would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..embeddings import Embedding
from ..errors import EmbeddingError, PromptError
from ..images import to_uint8_rgb
from .mask_region import region_mask
from .masks import BBox, crop_to_bbox
from .prompts import check_box, check_points
from .transforms import transform_for


@dataclass(frozen=True)
class Logits:
    """The decode of one prompt set: low-res logits (1, M, h, w) and predicted IoUs (1, M)."""

    low_res: torch.Tensor
    iou: torch.Tensor

    @property
    def scores(self) -> np.ndarray:
        return self.iou[0].float().cpu().numpy()


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

    def encode(self, rgb: np.ndarray) -> Embedding:
        """(H, W, 3) uint8 RGB -> its :class:`Embedding` (no state is changed)."""
        x, _ = self.transform.to_model_input(rgb, self.device)
        with torch.inference_mode():
            features = self.model.encode(x)  # a tensor, or one per level (SAM 2)
        size = rgb.shape[:2]
        return Embedding(features, size, self.transform.input_size(size), self.spec.name,
                         self.spec.family)

    def set_embedding(self, embedding: Embedding | torch.Tensor, original_size=None) -> None:
        """Decode against a precomputed embedding (e.g. from a cache): an :class:`Embedding`,
        or a (1, C, h, w) tensor with the ``original_size`` (H, W) of its image."""
        if not isinstance(embedding, Embedding):
            if original_size is None:
                raise ValueError("set_embedding(tensor, original_size): give the image size.")
            embedding = Embedding(embedding, original_size)
        self._check_levels(embedding)
        self.embedding = embedding.to(self.device)
        self.features = self.embedding.features
        self._decoder_levels = _decoder_layout(self.spec, self.embedding.levels)
        self.original_size = self.embedding.original_size
        self.input_size = self.embedding.input_size or self.transform.input_size(self.original_size)
        self.is_image_set = True

    def _check_levels(self, embedding: Embedding) -> None:
        needed = int(getattr(self.model, "feature_levels", 1))
        if len(embedding.levels) != needed:
            raise EmbeddingError(
                f"{self.spec.name} decodes with {needed} feature level(s) but this embedding "
                f"has {len(embedding.levels)}: compute it with this model "
                "(Predictor.encode or set_image) and pass the whole Embedding, not one tensor.")

    def get_image_embedding(self) -> torch.Tensor:
        """The (1, C, h, w) embedding of the current image (its main level)."""
        self._require_image()
        return self.features

    def reset_image(self) -> None:
        self.embedding = None
        self.features = None
        self._decoder_levels = ()
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
    def decode(self, point_coords=None, point_labels=None, box=None,
               multimask_output: bool = True, previous: Logits | None = None,
               candidate: int = 0) -> Logits:
        """One object's prompts -> its candidates (the promptable-predictor interface).

        ``previous``/``candidate``: feed that candidate's low-res logits back as
        ``mask_input`` (SAM's refinement), where the model takes a mask prompt."""
        mask_input = None
        if previous is not None and self.spec.supports_mask_input:
            low_res = previous.low_res[0, min(candidate, previous.low_res.shape[1] - 1)]
            mask_input = returned_logits(self.spec, low_res)
        return Logits(*self.decode_lowres(point_coords, point_labels, box, mask_input,
                                          multimask_output))

    def mask(self, decoded: Logits, candidate: int = 0) -> tuple[BBox | None, np.ndarray]:
        """Candidate ``candidate`` at the image size, as (bounding box, bool crop)."""
        self._require_image()
        low = decoded.low_res[0, candidate]
        region = self._region_mask(low)
        if region is not None:  # the same mask, upsampled only where it can be positive
            return region
        return crop_to_bbox(self.upsample(low).cpu().numpy())

    def _region_mask(self, low: torch.Tensor):
        steps = self.transform.upsample_steps(self.input_size, self.original_size)
        if steps is None or low.device.type != "cpu":
            return None
        return region_mask(low, steps, self.model.mask_threshold)

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False):
        """Decode one prompt set (x, y pixels of the image). Returns numpy ``(masks (C, H, W),
        scores (C,), low_res (C, h, w))``.

        ``masks`` are bool (logits > 0) unless ``return_logits``; C = 3 if multimask_output else 1.
        ``low_res`` are the logits to pass back as ``mask_input`` (clamped for SAM 2, whose
        masks still come from the unclamped logits, as its official ``predict``).
        """
        low_res, iou = self.decode_lowres(point_coords, point_labels, box, mask_input, multimask_output)
        masks = self.upsample(low_res, return_logits=return_logits)
        low_res = returned_logits(self.spec, low_res)
        return (masks[0].cpu().numpy(), iou[0].float().cpu().numpy(), low_res[0].float().cpu().numpy())

    def decode_lowres(self, point_coords=None, point_labels=None, box=None, mask_input=None,
                      multimask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate one prompt set in original pixels and decode it: (1, C, h, w) logits
        (unclamped: :func:`returned_logits` gives what ``predict`` returns), (1, C) IoUs."""
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
        return self.decode_batch(coords_t, labels_t, box_t, mask_t, multimask_output)

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None,
                      multimask_output: bool = True, return_logits: bool = False):
        """Batched prompts already in the model-input frame (see ``transform.apply_coords_torch``).

        point_coords (B, N, 2), point_labels (B, N), boxes (B, 4), mask_input (B, 1, h, w).
        Returns torch ``(masks (B, C, H, W), iou (B, C), low_res (B, C, h, w))`` (low_res as
        in :meth:`predict`).
        """
        self._require_image()
        if mask_input is not None and not self.spec.supports_mask_input:
            raise PromptError(f"{self.spec.name} takes no mask prompt (mask_input); leave it None.")
        low_res, iou = self.decode_batch(point_coords, point_labels, boxes, mask_input,
                                         multimask_output)
        masks = self.upsample(low_res, return_logits=return_logits)
        return masks, iou, returned_logits(self.spec, low_res)

    def upsample(self, low_res: torch.Tensor, return_logits: bool = False) -> torch.Tensor:
        """(..., h, w) low-res logits -> (..., H, W) logits or bool masks at the original size."""
        self._require_image()
        shape = low_res.shape
        flat = low_res.reshape(-1, 1, *shape[-2:]).float()
        with torch.inference_mode():
            logits = self.transform.postprocess_masks(flat, self.input_size, self.original_size)
        logits = logits.reshape(*shape[:-2], *logits.shape[-2:])
        return logits if return_logits else logits > self.model.mask_threshold

    def decode_batch(self, point_coords=None, point_labels=None, boxes=None, mask_input=None,
                     multimask_output: bool = True, network=None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder on prompts already in the model-input frame (B prompt sets at once, as
        everything mode sends them): (B, M, h, w) low-res logits, (B, M) IoU predictions.
        ``network``: whose ``decode`` runs (default the model; everything mode may pass the
        model's bfloat16 decoding twin, which shares its prompt frame)."""
        self._require_image()
        levels = self._decoder_levels
        features = levels[0] if len(levels) == 1 else levels  # multi-level models take all
        network = self.model if network is None else network
        with torch.inference_mode():
            return network.decode(
                features, point_coords=point_coords, point_labels=point_labels, boxes=boxes,
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


#: families whose decoder reads the image embedding as (h*w, C) tokens (SAM's two-way transformer)
_TOKEN_MAJOR = ("sam", "mobile_sam", "sam2")


def _decoder_layout(spec, levels: tuple) -> tuple:
    """The levels as the decoder reads them.  SAM's two-way transformer transposes the
    (1, C, h, w) embedding into (h*w, C) tokens at every decode: 4 MB read across rows,
    ~4 ms of one core per click.  Held channels-last once per image, that transpose is a
    view; the values are the same (another memory layout, not other numbers)."""
    if spec.family not in _TOKEN_MAJOR or levels[0].dim() != 4:
        return levels
    return (levels[0].contiguous(memory_format=torch.channels_last), *levels[1:])


def returned_logits(spec, low_res: torch.Tensor) -> torch.Tensor:
    """Low-res logits (..., h, w) as the model's official predictor returns them and takes
    them back as ``mask_input``: clamped to +-``spec.low_res_logit_limit`` (SAM 2: 32),
    unchanged for models without a limit (SAM)."""
    limit = getattr(spec, "low_res_logit_limit", None)
    return low_res if limit is None else low_res.clamp(-limit, limit)
