"""The TinyViT encoder (MobileSAM's image encoder)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sam.common import LayerNorm2d
from .attention_blocks import BasicLayer
from .conv_blocks import ConvLayer, PatchEmbed, PatchMerging
from .fast_ops import fast_conv, fast_linear

class TinyViT(nn.Module):
    """TinyViT image encoder with SAM's neck: (B, 3, S, S) -> (B, 256, S/16, S/16).

    Defaults are MobileSAM's ``build_sam_vit_t`` configuration.  Stochastic depth and
    dropout are not implemented (inference only; MobileSAM uses rates of 0).

    fast_inference: use the fast path (see the module docstring) whenever the module is in
    eval mode and autograd is off; set False to always run the reference path.

    Computes in the dtype of its weights (float32, or bfloat16 after
    ``models.precision.set_encoder_precision``; norms and attention biases stay float32)
    and returns the input's dtype.
    """

    def __init__(self, img_size: int = 1024, in_chans: int = 3, num_classes: int = 1000,
                 embed_dims: Sequence[int] = (64, 128, 160, 320),
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (2, 4, 5, 10),
                 window_sizes: Sequence[int] = (7, 7, 14, 7), mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0, local_conv_size: int = 3,
                 neck_chans: int = 256, fast_inference: bool = True) -> None:
        super().__init__()
        self.img_size = img_size
        self.num_classes = num_classes
        self.depths = tuple(depths)
        self.num_layers = len(depths)
        self.mlp_ratio = mlp_ratio
        self.fast_inference = fast_inference
        activation = nn.GELU
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0], img_size, activation)
        res = self.patch_embed.patches_resolution
        self.patches_resolution = res
        self.layers = nn.ModuleList()
        for i in range(self.num_layers):
            # official: the last stage keeps the resolution of the one before (stride-1 merge)
            div = 2 ** (i - 1 if i == 3 else i)
            kwargs = dict(
                dim=embed_dims[i], input_resolution=(res[0] // div, res[1] // div),
                depth=depths[i], activation=activation,
                downsample=PatchMerging if i < self.num_layers - 1 else None,
                out_dim=embed_dims[min(i + 1, len(embed_dims) - 1)],
            )
            if i == 0:
                layer = ConvLayer(conv_expand_ratio=mbconv_expand_ratio, **kwargs)
            else:
                layer = BasicLayer(num_heads=num_heads[i], window_size=window_sizes[i],
                                   mlp_ratio=mlp_ratio, local_conv_size=local_conv_size,
                                   **kwargs)
            self.layers.append(layer)
        # unused ImageNet classifier, kept because the official checkpoint has its keys
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], neck_chans, kernel_size=1, bias=False),
            LayerNorm2d(neck_chans),
            nn.Conv2d(neck_chans, neck_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(neck_chans),
        )

    def uses_fast_path(self) -> bool:
        """True if ``forward`` would take the fast path now.

        Not under ``torch.autocast``: the fast path computes in the weights' dtype with
        kernels autocast does not know (use ``set_encoder_precision`` for bfloat16).
        """
        return (self.fast_inference and not self.training and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled(self.neck[0].weight.device.type))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, S, S) normalised image -> (B, 256, S/16, S/16) embeddings (x's dtype)."""
        out_dtype = x.dtype
        x = x.to(self.neck[0].weight.dtype)
        if self.uses_fast_path():
            return self.forward_fast(x).to(out_dtype)
        return self.forward_reference(x).to(out_dtype)

    def forward_reference(self, x: Tensor) -> Tensor:
        """The official computation, module by module (LayerNorm2d of the neck is
        ``models/sam/common.py``'s: same maths, float-rounding differences)."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, n, c = x.shape
        h, w = self.layers[-1].input_resolution
        x = x.view(b, h, w, c).permute(0, 3, 1, 2)
        return self.neck(x)

    @torch.no_grad()
    def forward_fast(self, x: Tensor) -> Tensor:
        """The fast inference path (no autograd); same maths as ``forward_reference``.

        Images of a batch run one after the other: every strip / band slice is then
        contiguous, and a batch would not be faster on a CPU anyway.
        """
        if x.shape[0] > 1:
            return torch.cat([self.forward_fast(x[i:i + 1]) for i in range(x.shape[0])])
        x = x.contiguous(memory_format=torch.channels_last)
        # modules are called (not their forward_fast) so that forward hooks fire: the
        # engine reports progress and cancels between ``layers`` through them
        x = self.patch_embed(x, fast=True)  # (B, C, H, W) channels-last
        for layer in self.layers:
            x = layer(x, fast=True)  # tokens (B, H, W, C) after layers[0]
        return self._neck_fast(x)

    def _neck_fast(self, x: Tensor) -> Tensor:
        """Tokens (B, H, W, C) -> (B, 256, H, W) contiguous NCHW."""
        conv1, norm1, conv2, norm2 = self.neck
        x = fast_linear(x, conv1.weight.flatten(1), None)  # 1x1 conv on tokens
        x = F.layer_norm(x, x.shape[-1:], norm1.weight, norm1.bias, norm1.eps)
        x = fast_conv(x.permute(0, 3, 1, 2), conv2.weight, None, conv2.stride, conv2.padding,
                  conv2.groups)
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], norm2.weight, norm2.bias, norm2.eps)
        return x.permute(0, 3, 1, 2).contiguous()
