"""Builders for EfficientSAM ViT-Tiny / ViT-Small (official hyper-parameters)."""
from __future__ import annotations

from torch import nn

from .efficient_sam import EfficientSam
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .transformer import TwoWayTransformer

EMBED_DIM = 256  # neck / prompt / decoder width
PATCH_SIZE = 16


def build_efficient_sam(
    encoder_patch_embed_dim: int, encoder_num_heads: int, image_size: int = 1024
) -> EfficientSam:
    """Randomly initialised EfficientSAM with a ViT of width ``encoder_patch_embed_dim``.

    Fixed official settings: 12 blocks, MLP ratio 4, GELU, neck 256; decoder: 2-layer
    two-way transformer (8 heads, MLP 2048), 3 multimask outputs (+1 single), IoU head
    with 2 hidden layers of 256, upscaling 256 -> 64 -> 32, at most 6 prompt points.
    ``image_size`` must be a multiple of 16 (the official models use 1024).
    """
    if image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a multiple of {PATCH_SIZE}, got {image_size}")
    grid = image_size // PATCH_SIZE
    image_encoder = ImageEncoderViT(
        img_size=image_size, patch_size=PATCH_SIZE, patch_embed_dim=encoder_patch_embed_dim,
        depth=12, num_heads=encoder_num_heads, mlp_ratio=4.0, neck_dim=EMBED_DIM,
    )
    prompt_encoder = PromptEncoder(EMBED_DIM, (grid, grid), (image_size, image_size))
    transformer = TwoWayTransformer(
        depth=2, embedding_dim=EMBED_DIM, num_heads=8, mlp_dim=2048, activation=nn.GELU
    )
    mask_decoder = MaskDecoder(
        transformer, EMBED_DIM, num_multimask_outputs=3, iou_head_depth=2,
        iou_head_hidden_dim=256, upscaling_layer_dims=(64, 32), activation=nn.GELU,
    )
    model = EfficientSam(image_encoder, prompt_encoder, mask_decoder, 6)
    return model.eval()


def build_efficient_sam_vitt(image_size: int = 1024) -> EfficientSam:
    """EfficientSAM-Ti: ViT-Tiny encoder (width 192, 3 heads), 10.2 M parameters."""
    return build_efficient_sam(192, 3, image_size)


def build_efficient_sam_vits(image_size: int = 1024) -> EfficientSam:
    """EfficientSAM-S: ViT-Small encoder (width 384, 6 heads), 26.4 M parameters."""
    return build_efficient_sam(384, 6, image_size)
