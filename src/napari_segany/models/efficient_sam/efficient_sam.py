"""The EfficientSAM container implementing the promptable-model contract
(``docs/dev/architecture.md``): ``encode`` + ``decode``; no pre/post-processing.

Prompt handling that *is* part of the official network call (``predict_masks``) lives here:
boxes become two corner points (labels 2, 3), coordinates < 0 become -1, and every prompt
set is padded with (-1, -1)/label -1 to exactly ``decoder_max_num_input_points`` (6) points.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import VALID_LABELS, PromptEncoder

PAD_LABEL = -1
BOX_LABELS = (2, 3)  # top-left, bottom-right corner


class EfficientSam(nn.Module):
    """EfficientSAM ViT-T/S.  Submodules ``image_encoder``, ``prompt_encoder``,
    ``mask_decoder`` carry the official key names (strict loading, no mapping).

    ``pixel_mean``/``pixel_std`` are deliberately absent: they are non-persistent in the
    official model (not in the checkpoint) and the engine normalises (ImageNet mean/std on
    the [0, 1] scale, after the bilinear stretch to 1024 x 1024).
    """

    mask_threshold: float = 0.0
    supports_mask_input: bool = False
    precision: str = "fp32"  # of the image encoder; set by models.precision.set_encoder_precision

    def __init__(
        self, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder, decoder_max_num_input_points: int = 6,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.decoder_max_num_input_points = decoder_max_num_input_points
        self.image_size = image_encoder.img_size

    # ------------------------------------------------------------------ encoder
    def encode(self, x: Tensor) -> Tensor:
        """x: (B, 3, 1024, 1024) float32, stretched (no padding) and normalised.
        Returns image embeddings (B, 256, 64, 64)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode expects a (B, 3, H, W) image batch, got {tuple(x.shape)}")
        return self.image_encoder(x)

    # ------------------------------------------------------------------ decoder
    def decode(
        self,
        embeddings: Tensor,
        point_coords: Tensor | None = None,
        point_labels: Tensor | None = None,
        boxes: Tensor | None = None,
        mask_input: Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Decode B prompt sets against (1 or B) image embeddings (B', 256, 64, 64).

        point_coords: (B, N, 2) x, y in model-input pixels (the 1024 x 1024 stretched frame:
            x * 1024 / W, y * 1024 / H), before the +0.5 pixel-centre shift.
        point_labels: (B, N) int: 1 positive, 0 negative, -1 padding; 2 / 3 are also
            accepted as EfficientSAM box corners (top-left / bottom-right).
        boxes: (B, 4) x0, y0, x1, y1 in model-input pixels; appended after the points
            as two corner points with labels 2 and 3.
        mask_input: must be None (EfficientSAM has no mask prompt).
        multimask_output: True -> the 3 masks/IoUs of mask tokens 1..3 in model order
            (unsorted); False -> mask token 0, as the official decoder returns it.
        Returns low-res logits (B, M, 256, 256) and IoU predictions (B, M), M = 3 or 1.
        """
        if mask_input is not None:
            raise ValueError(
                "EfficientSAM takes no mask prompt (mask_input must be None); pass the previous "
                "round's clicks as points instead."
            )
        coords, labels = self.prepare_prompts(point_coords, point_labels, boxes, embeddings.device)
        b = coords.shape[0]
        if embeddings.ndim != 4 or embeddings.shape[0] not in (1, b):
            raise ValueError(
                f"embeddings must be (1 or {b}, C, h, w) for {b} prompt sets, "
                f"got {tuple(embeddings.shape)}"
            )
        sparse = self.prompt_encoder(coords, labels)
        dense_pe = self.prompt_encoder.get_dense_pe()
        return self.mask_decoder(embeddings, dense_pe, sparse, multimask_output)

    def prepare_prompts(
        self,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        boxes: Tensor | None,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Contract prompts -> the prompt encoder's input, as the official ``predict_masks``
        builds it: coords (B, 6, 2) float32 x/y and labels (B, 6) int64.

        Order per prompt set: the real points in their given order, then the box corners
        (2, 3), then padding ((-1, -1), label -1).  Padding given inside ``point_labels``
        is moved to the end (the official code would keep it in place and truncate at 6;
        moving it changes nothing but the float summation order and never drops a real
        prompt).  Padding coordinates are forced to -1 and any coordinate < 0 becomes -1,
        as in the official ``get_rescaled_pts``, so the result does not depend on what
        the caller put in padding slots.
        """
        coords, labels = _points_and_boxes(point_coords, point_labels, boxes, device)
        coords, labels = _padding_last(coords, labels)
        n_max = self.decoder_max_num_input_points
        counts = (labels != PAD_LABEL).sum(1)
        n_real = int(counts.max()) if counts.numel() else 0
        if n_real > n_max:
            raise ValueError(
                f"EfficientSAM accepts at most {n_max} prompt points per prompt set (a box "
                f"counts as 2), got {n_real}: remove some clicks."
            )
        pad = n_max - coords.shape[1]
        if pad > 0:
            coords = torch.cat([coords, coords.new_full((coords.shape[0], pad, 2), -1.0)], 1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], pad), PAD_LABEL)], 1)
        coords, labels = coords[:, :n_max], labels[:, :n_max]  # only padding is cut
        coords = torch.where((labels == PAD_LABEL)[..., None], -1.0, coords)
        coords = torch.where(coords >= 0, coords, -1.0)
        return coords, labels


def _points_and_boxes(point_coords, point_labels, boxes, device) -> tuple[Tensor, Tensor]:
    """Validate and concatenate points (B, N, 2) and box corners (B, 2, 2) along N."""
    if point_coords is None and boxes is None:
        raise ValueError("Give at least one prompt: point_coords/point_labels or boxes.")
    parts: list[tuple[Tensor, Tensor]] = []
    if point_coords is not None:
        if point_labels is None:
            raise ValueError("point_labels (B, N) are required with point_coords (B, N, 2).")
        coords = torch.as_tensor(point_coords, device=device).float()
        labels = torch.as_tensor(point_labels, device=device).long()
        if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
            raise ValueError(
                "point_coords must be (B, N, 2) x/y and point_labels (B, N); got "
                f"{tuple(coords.shape)} and {tuple(labels.shape)}"
            )
        bad = ~torch.isin(labels, torch.tensor(VALID_LABELS, device=labels.device))
        if bad.any():
            raise ValueError(
                f"point_labels must be 1 (positive), 0 (negative), -1 (padding) or 2/3 (box "
                f"corners); got {sorted(set(labels[bad].tolist()))}"
            )
        parts.append((coords, labels))
    if boxes is not None:
        box = torch.as_tensor(boxes, device=device).float()
        if box.ndim != 2 or box.shape[-1] != 4:
            raise ValueError(f"boxes must be (B, 4) x0, y0, x1, y1; got {tuple(box.shape)}")
        corners = box.reshape(-1, 2, 2)
        corner_labels = torch.tensor(BOX_LABELS, device=box.device).expand(box.shape[0], 2)
        parts.append((corners, corner_labels))
    if len({p[0].shape[0] for p in parts}) > 1:
        raise ValueError(
            f"points and boxes must describe the same number of prompt sets B, got "
            f"{parts[0][0].shape[0]} and {parts[1][0].shape[0]}"
        )
    return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)


def _padding_last(coords: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Stable-move padding (label -1) behind the real prompts of each prompt set."""
    order = torch.argsort((labels == PAD_LABEL).to(torch.int8), dim=1, stable=True)
    coords = torch.gather(coords, 1, order[..., None].expand(-1, -1, 2))
    return coords, torch.gather(labels, 1, order)
