"""Small blocks shared by the EfficientSAM encoder, transformer and decoder.

``LayerNorm2d`` is SAM's (same maths); it is re-exported here for the encoder's neck.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..sam.common import LayerNorm2d

__all__ = ["LayerNorm2d", "MLPBlock"]


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
