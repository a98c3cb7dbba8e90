"""The ``Sam`` container: image encoder + prompt encoder + mask decoder.

Implements the promptable-model contract of ``docs/dev/architecture.md``.  Normalisation,
resizing/padding and upsampling of the low-res logits are the engine's job: this module
has no ``pixel_mean``/``pixel_std`` (the official checkpoints do not contain them either).
"""
from __future__ import annotations

from torch import Tensor, nn

from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder


def _batch_of(name: str, t: Tensor, ndim: int, tail: tuple, hint: str) -> int:
    """Check ``t`` has ``ndim`` dims ending in ``tail`` (None = any); return its batch size."""
    if t.ndim != ndim or any(want is not None and got != want
                             for got, want in zip(t.shape[1:], tail)):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {hint}")
    return t.shape[0]


def check_prompts(pe: PromptEncoder, embeddings: Tensor, point_coords, point_labels, boxes,
                  mask_input):
    """Validate the prompts of ``decode`` against the prompt encoder ``pe`` and the (lowest
    level) image embeddings; returns (points, boxes, mask_input, B) with coordinates in
    float32 (the positional encoding is computed in float32).  Shared by SAM and SAM 2."""
    (h, w), c = pe.image_embedding_size, pe.embed_dim
    batches = []  # batch sizes of the sparse prompts
    points = None
    if (point_coords is None) != (point_labels is None):
        raise ValueError("give point_coords and point_labels together (or neither)")
    if point_coords is not None:
        batches.append(_batch_of("point_coords", point_coords, 3, (None, 2), "(B, N, 2) x, y"))
        n = point_coords.shape[1]
        batches.append(_batch_of("point_labels", point_labels, 2, (n,), f"(B, {n}) ints"))
        if ((point_labels < -1) | (point_labels > 1)).any():
            raise ValueError(
                "point_labels must be 1 (foreground), 0 (background) or -1 (padding)"
            )
        points = (point_coords.float(), point_labels.long())
    if boxes is not None:
        if boxes.ndim == 3 and boxes.shape[1] == 1:  # (B, 1, 4) as in predict_torch
            boxes = boxes[:, 0]
        batches.append(_batch_of("boxes", boxes, 2, (4,), "(B, 4) x0, y0, x1, y1"))
        boxes = boxes.float()
    emb_b = _batch_of("embeddings", embeddings, 4, (c, h, w), f"(1 or B, {c}, {h}, {w})")
    mask_b = 1
    if mask_input is not None:
        mask_b = _batch_of("mask_input", mask_input, 4, (1, 4 * h, 4 * w),
                           f"(B, 1, {4 * h}, {4 * w}) low-res logits")
        mask_input = mask_input.to(embeddings.dtype)
    batch = batches[0] if batches else max(emb_b, mask_b)
    if any(b != batch for b in batches) or emb_b not in (1, batch) or mask_b not in (1, batch):
        raise ValueError(
            f"batch sizes disagree (points/boxes {batches}, mask_input {mask_b}, embeddings "
            f"{emb_b}): give every prompt tensor the same batch size B, and embeddings and "
            "mask_input a batch of 1 or B"
        )
    return points, boxes, mask_input, batch


class Sam(nn.Module):
    """Segment Anything: ``encode`` an image once, ``decode`` many prompts against it.

    image_size: side S of the square model input; embeddings are (B, 256, S/16, S/16) and
    low-res mask logits (B, M, S/4, S/4).
    """

    mask_threshold: float = 0.0
    supports_mask_input: bool = True
    precision: str = "fp32"  # of the image encoder; set by models.precision.set_encoder_precision
    #: cast to bfloat16 in everything mode's batched decoder of a bf16 model
    #: (models.precision.bf16_decoding_twin): the matmuls over the 4096 image tokens
    bf16_decoder_parts: tuple[str, ...] = ("mask_decoder.transformer",
                                           "mask_decoder.output_upscaling")

    def __init__(
        self, image_encoder: nn.Module, prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder, image_size: int = 1024,
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.image_size = image_size

    def encode(self, x: Tensor) -> Tensor:
        """x: (B, 3, S, S) float, normalised and padded by the engine.
        Returns (B, C, S/16, S/16) image embeddings (C = 256), channels-last in memory
        (the layout ``decode`` reads fastest; any layout is accepted)."""
        s = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(
                f"encode() got an input of shape {tuple(x.shape)}; expected (B, 3, {s}, {s}): "
                "resize the longest side to the model's image_size, normalise and pad first"
            )
        return self.image_encoder(x)

    def decode(
        self, embeddings: Tensor, point_coords: Tensor | None = None,
        point_labels: Tensor | None = None, boxes: Tensor | None = None,
        mask_input: Tensor | None = None, multimask_output: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Decode B prompt sets against the image embeddings.

        embeddings: (1 or B, C, h, w); a batch of 1 is shared by all prompt sets.
        point_coords: (B, N, 2) x, y in model-input pixels (before the +0.5 pixel-centre
            shift, which the prompt encoder applies); point_labels: (B, N) ints,
            1 foreground, 0 background, -1 padding.  Without a box, SAM's padding point
            ((0, 0), label -1) is appended.
        boxes: (B, 4) x0, y0, x1, y1 in model-input pixels (their tokens follow the points').
        mask_input: (B or 1, 1, 4h, 4w) low-res logits of a previous round.
        Returns low_res_logits (B, M, 4h, 4w) and iou_predictions (B, M): M = 3 (mask
        tokens 1..3) if multimask_output else 1 (token 0).
        """
        pe = self.prompt_encoder
        points, boxes, mask_input, batch = check_prompts(
            pe, embeddings, point_coords, point_labels, boxes, mask_input
        )
        sparse, dense = pe(points, boxes, mask_input, batch_size=batch)
        return self.mask_decoder(embeddings, pe.get_dense_pe(), sparse, dense, multimask_output)

    def forward(self, x: Tensor) -> Tensor:
        """Same as :meth:`encode` (so tracing/profiling tools can call the module)."""
        return self.encode(x)
