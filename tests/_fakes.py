"""A geometric stand-in for a promptable network (the architecture contract, no learning).

Masks are disks around the first positive point (three radii = three candidates) or the
inside of the box, so tests can check *where* a mask lands.  Its encoder has repeated blocks
(a ModuleList), like the real ones, for the progress hooks.
"""
from __future__ import annotations

import torch
from torch import nn

from napari_segany.models.registry import ModelSpec

FAKE_SPEC = ModelSpec(
    name="fake_sam", family="fake", task="promptable", builder="_fakes:FakePromptable",
    file_name="fake.pt", license="test-only", checkpoint_format="state_dict", input_size=64,
)


class FakePromptable(nn.Module):
    mask_threshold = 0.0
    supports_mask_input = True
    image_size = 64

    def __init__(self):
        super().__init__()
        self.image_encoder = nn.Module()
        self.image_encoder.blocks = nn.ModuleList(
            [nn.Conv2d(3 if i == 0 else 4, 4, 2, stride=2) for i in range(4)])
        self.radii = (2.0, 4.0, 6.0)  # in low-res pixels (16 x 16 for a 64 input)
        self.scores = torch.tensor([0.5, 0.9, 0.7])
        self.decode_calls = []

    def encode(self, x):
        for block in self.image_encoder.blocks:
            x = block(x)
        return x

    def decode(self, embeddings, point_coords=None, point_labels=None, boxes=None,
               mask_input=None, multimask_output=True):
        self.decode_calls.append(dict(points=point_coords, labels=point_labels, boxes=boxes,
                                      mask_input=mask_input, multimask=multimask_output))
        side = 4 * embeddings.shape[-1]
        yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
        scale = side / self.image_size
        if boxes is not None:
            x0, y0, x1, y1 = (boxes[0] * scale).tolist()
            inside = torch.minimum(torch.minimum(xx - x0, x1 - xx), torch.minimum(yy - y0, y1 - yy))
            masks = [inside + r - 4.0 for r in self.radii]
        else:
            first = int((point_labels[0] == 1).nonzero()[0, 0])
            cx, cy = (point_coords[0, first] * scale).tolist()
            dist = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
            masks = [r - dist for r in self.radii]
        logits = torch.stack(masks)[None]
        if not multimask_output:
            return logits[:, 1:2], self.scores[None, 1:2]
        return logits, self.scores[None]


def fake_model():
    model = FakePromptable().eval()
    model.spec = FAKE_SPEC
    model.checkpoint_path = "fake"
    return model
