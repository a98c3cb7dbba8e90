"""Builders of SAM 2.1 networks (randomly initialised; load an official state dict after).

Hyper-parameters are those of the official configs ``configs/sam2.1/sam2.1_hiera_{t,s,b+,l}
.yaml`` of sam2 1.1.0 (with the image/video builders' post-processing overrides: dynamic
multimask via stability, delta 0.05, threshold 0.98).  Everything but the Hiera trunk is
the same for the four sizes.
"""
from __future__ import annotations

from ..sam.transformer import TwoWayTransformer
from .hiera import Hiera
from .image_encoder import FpnNeck, ImageEncoder
from .mask_decoder import Sam2MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .position_encoding import PositionEmbeddingSine
from .sam2 import Sam2

D_MODEL = 256
MEM_DIM = 64

#: Hiera settings per official config (unspecified ones are Hiera's defaults).
HIERA_CONFIGS = {
    "t": dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
              window_pos_embed_bkg_spatial_size=(7, 7)),
    "s": dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
              window_pos_embed_bkg_spatial_size=(7, 7)),
    "b+": dict(embed_dim=112, num_heads=2),
    "l": dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
              window_pos_embed_bkg_spatial_size=(7, 7), window_spec=(8, 4, 16, 8)),
}


def build_sam2(hiera: dict, image_size: int = 1024) -> Sam2:
    """SAM 2.1 with the given Hiera settings (see :data:`HIERA_CONFIGS`)."""
    trunk = Hiera(**hiera)
    neck = FpnNeck(PositionEmbeddingSine(D_MODEL), D_MODEL, trunk.channel_list,
                   fpn_top_down_levels=[2, 3], fpn_interp_model="nearest")
    transformer = TwoWayTransformer(depth=2, embedding_dim=D_MODEL, num_heads=8, mlp_dim=2048)
    decoder = Sam2MaskDecoder(transformer_dim=D_MODEL, transformer=transformer,
                              num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
    return Sam2(
        ImageEncoder(trunk, neck, scalp=1),
        MemoryAttention(D_MODEL, num_layers=4, dim_feedforward=2048, kv_in_dim=MEM_DIM),
        MemoryEncoder(out_dim=MEM_DIM, in_dim=D_MODEL),
        decoder, image_size=image_size, num_maskmem=7,
    )


def build_sam2_hiera_t(image_size: int = 1024) -> Sam2:
    """SAM 2.1 Hiera-Tiny (``sam2.1_hiera_tiny.pt``)."""
    return build_sam2(HIERA_CONFIGS["t"], image_size)


def build_sam2_hiera_s(image_size: int = 1024) -> Sam2:
    """SAM 2.1 Hiera-Small (``sam2.1_hiera_small.pt``)."""
    return build_sam2(HIERA_CONFIGS["s"], image_size)


def build_sam2_hiera_b_plus(image_size: int = 1024) -> Sam2:
    """SAM 2.1 Hiera-Base+ (``sam2.1_hiera_base_plus.pt``)."""
    return build_sam2(HIERA_CONFIGS["b+"], image_size)


def build_sam2_hiera_l(image_size: int = 1024) -> Sam2:
    """SAM 2.1 Hiera-Large (``sam2.1_hiera_large.pt``)."""
    return build_sam2(HIERA_CONFIGS["l"], image_size)
