"""EfficientSAM (Xiong et al., 2023): ViT-Tiny / ViT-Small image encoder with a SAM-style
prompt encoder and mask decoder.

Pure-torch re-implementation whose module names follow the official repository
(``yformer/EfficientSAM``) so that the official checkpoints load with ``strict=True``
and no key mapping.  Builders live in :mod:`.build`, the checkpoint-layout helper in
:mod:`.keys`.
"""
from .efficient_sam import EfficientSam

__all__ = ["EfficientSam"]
