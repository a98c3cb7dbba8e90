"""TinyViT-5M: the image encoder of MobileSAM (Zhang et al. 2023, after Wu et al. 2022).

Module and attribute names follow ``mobile_sam/modeling/tiny_vit_sam.py`` of
ChaoningZhang/MobileSAM, so the ``image_encoder.*`` keys of the official ``mobile_sam.pt``
load strictly (including the unused ImageNet classifier ``norm_head``/``head``).

Shapes for MobileSAM (image 1024, embed_dims 64/128/160/320):

    image (B, 3, 1024, 1024)
    patch_embed  -> (B, 64, 256, 256)           two 3x3 stride-2 Conv+BN, GELU between
    layers[0]    -> (B, 128, 128, 128)          2 MBConv + PatchMerging (stride 2)
    layers[1]    -> (B, 64*64, 160)             2 TinyViT blocks (window 7) + merging (2)
    layers[2]    -> (B, 64*64, 320)             6 blocks (window 14) + merging (stride 1!)
    layers[3]    -> (B, 64*64, 320)             2 blocks (window 7)
    neck         -> (B, 256, 64, 64)            1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d

Two forward paths compute the same function:

* the *reference path* (``forward`` of every module) mirrors the official code operation
  by operation (Conv then BatchNorm, NCHW <-> token transposes, padded windows).  It runs
  in training mode, with autograd, or when ``TinyViT.fast_inference`` is False.
* the *fast path* (``TinyViT.forward`` in eval mode with gradients off, e.g. under
  ``torch.inference_mode()``; stages are called as ``module(x, fast=True)`` so forward
  hooks still fire) keeps activations channels-last (tokens ``(B, H, W, C)``), uses
  Conv+BN folded weights, oneDNN kernels with fused GELU / residual add where available
  (``torch.ops.mkldnn``; plain ``F.conv2d``/``F.linear`` otherwise), and works in pieces:
  the convolution stages in row strips, attention one band of windows at a time, the MLP
  in chunks of tokens.  No activation larger than ~20 MB is ever allocated: freshly
  allocated large tensors are page-faulted memory, which on CPU cost more than the
  convolutions themselves; pieces are also cache-resident.  About 3x faster than the
  reference path on CPU (0.37 s vs 1.15 s on 2 cores); agrees with it to ~1e-5 (float32).

Derived tensors (folded Conv+BN weights, the gathered attention-bias tables, the q-scaled
qkv weights) are cached *keyed on the version counters* of the parameters they come from:
``load_state_dict``, ``.to()`` and any in-place update change the key, so the cache can
never go stale.  This replaces the official ``Attention.train(False)`` cache ``ab``,
which is computed in ``eval()`` and is stale if weights are loaded afterwards (the
official builder calls ``eval()`` *before* loading).  No "fuse" or "prepare" call is
needed after loading; the first fast forward after a change rebuilds the cache (~ms).
"""
from __future__ import annotations

from .encoder import TinyViT
from .conv_blocks import Conv2d_BN
from .fast_ops import onednn_fusion_available

__all__ = ["TinyViT", "Conv2d_BN", "onednn_fusion_available"]
