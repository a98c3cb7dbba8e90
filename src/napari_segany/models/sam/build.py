"""Builders of SAM networks (randomly initialised; load an official state dict after).

Every size derives from ``image_size`` S: embeddings are S/16 per side, mask prompts and
low-res logits S/4.  The official checkpoints are for S = 1024 (their ``pos_embed`` and
global-attention ``rel_pos`` tables are sized for a 64 x 64 embedding).
"""
from __future__ import annotations

from torch import nn

from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .transformer import TwoWayTransformer

PATCH_SIZE = 16


def build_sam(image_encoder: nn.Module, image_size: int = 1024, embed_dim: int = 256) -> Sam:
    """Wrap any encoder mapping (B, 3, S, S) -> (B, embed_dim, S/16, S/16) with SAM's
    prompt encoder and mask decoder (used by MobileSAM's TinyViT builder too)."""
    if image_size % PATCH_SIZE:
        raise ValueError(f"image_size {image_size} must be a multiple of {PATCH_SIZE}")
    grid = image_size // PATCH_SIZE
    prompt_encoder = PromptEncoder(
        embed_dim=embed_dim, image_embedding_size=(grid, grid),
        input_image_size=(image_size, image_size), mask_in_chans=16,
    )
    transformer = TwoWayTransformer(depth=2, embedding_dim=embed_dim, num_heads=8, mlp_dim=2048)
    mask_decoder = MaskDecoder(
        transformer_dim=embed_dim, transformer=transformer, num_multimask_outputs=3,
        iou_head_depth=3, iou_head_hidden_dim=256,
    )
    return Sam(image_encoder, prompt_encoder, mask_decoder, image_size=image_size)


def build_sam_vit(
    embed_dim: int, depth: int, num_heads: int, global_attn_indexes: tuple[int, ...],
    image_size: int = 1024, window_size: int = 14,
) -> Sam:
    """SAM with a ViT encoder of the given width/depth/heads (``embed_dim`` is the ViT's).

    A tiny configuration for fast tests: ``build_sam_vit(64, 2, 2, (1,), image_size=256)``
    (16 x 16 embedding, 64 x 64 low-res logits).
    """
    encoder = ImageEncoderViT(
        img_size=image_size, patch_size=PATCH_SIZE, embed_dim=embed_dim, depth=depth,
        num_heads=num_heads, mlp_ratio=4.0, out_chans=256, window_size=window_size,
        global_attn_indexes=tuple(global_attn_indexes),
    )
    return build_sam(encoder, image_size=image_size, embed_dim=256)


def build_sam_vit_b(image_size: int = 1024) -> Sam:
    """SAM ViT-B (checkpoint ``sam_vit_b_01ec64.pth``)."""
    return build_sam_vit(768, 12, 12, (2, 5, 8, 11), image_size)


def build_sam_vit_l(image_size: int = 1024) -> Sam:
    """SAM ViT-L (checkpoint ``sam_vit_l_0b3195.pth``)."""
    return build_sam_vit(1024, 24, 16, (5, 11, 17, 23), image_size)


def build_sam_vit_h(image_size: int = 1024) -> Sam:
    """SAM ViT-H (checkpoint ``sam_vit_h_4b8939.pth``)."""
    return build_sam_vit(1280, 32, 16, (7, 15, 23, 31), image_size)
