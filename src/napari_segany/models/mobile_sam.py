"""MobileSAM (Zhang et al. 2023): SAM's prompt encoder and mask decoder on a TinyViT-5M
image encoder, as built by the official ``build_sam_vit_t``.

The official ``mobile_sam.pt`` loads strictly into ``build_mobile_sam()`` with identity
keys (``image_encoder.*`` incl. the unused ``norm_head``/``head``, ``prompt_encoder.*``,
``mask_decoder.*``).  Weights can be loaded at any time: the encoder's derived tensors
(attention-bias tables, folded Conv+BN) follow the parameters automatically, see
``models/tiny_vit/`` (its package docstring); no ``eval()``-after-loading ritual as in the
official code.
"""
from __future__ import annotations

from .sam.build import build_sam
from .sam.sam import Sam
from .tiny_vit import TinyViT

#: ``build_sam_vit_t`` of ChaoningZhang/MobileSAM (TinyViT-5M, 1000-class head kept).
TINY_VIT_5M = dict(
    in_chans=3, num_classes=1000, embed_dims=(64, 128, 160, 320), depths=(2, 2, 6, 2),
    num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7), mlp_ratio=4.0,
    mbconv_expand_ratio=4.0, local_conv_size=3,
)


def build_mobile_sam(image_size: int = 1024, fast_inference: bool = True) -> Sam:
    """MobileSAM, randomly initialised: (B, 3, S, S) -> embeddings (B, 256, S/16, S/16).

    fast_inference: let the encoder take its fast path in eval mode without autograd
    (see ``TinyViT``); False always runs the op-by-op reference computation.
    """
    encoder = TinyViT(img_size=image_size, fast_inference=fast_inference, **TINY_VIT_5M)
    return build_sam(encoder, image_size=image_size)
