"""Small blocks shared by the EfficientSAM encoder, transformer and decoder."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor.

    Written out (mean, variance, sqrt) exactly like the official code rather than via
    ``F.layer_norm`` on a permuted tensor, so the float32 rounding matches the reference.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """``num_layers`` x (Linear + activation), then a final Linear called ``fc``.

    Key layout (official ``mlp.MLPBlock``): ``layers.K.0.{weight,bias}`` for the hidden
    layers (``.1`` is the parameter-free activation) and ``fc.{weight,bias}``.
    Note that, unlike SAM's MLP, *every* hidden layer's output width is ``hidden_dim``
    and ``num_layers`` counts only the hidden layers.
    """

    def __init__(
        self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
        act: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        in_dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(n, hidden_dim), act()) for n in in_dims
        )
        self.fc = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.fc(x)
