"""SAM ViT-L against the official encoder's embedding (the largest model the suite runs).

A module of its own that the suite runs first (tests/conftest.py, HEAVY): ViT-L's
weights (1.2 GB) are then loaded into a small process, which keeps the suite's peak memory low.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from _memory import return_free_memory


def test_vit_l_image_embedding(synth_state_dict, parity_dir, tmp_path):
    """ViT-L end to end from a file through load_model + Predictor (same code paths as ViT-B
    but width/depth/heads/global indexes).  Loading from a file holds one copy of the weights
    (load_weights(consume=True)), which keeps the suite's peak memory low."""
    import napari_segany as nsa

    path = tmp_path / "sam_vit_l.pth"
    torch.save(synth_state_dict("sam_vit_l"), path)  # not kept by the fixture: too large
    return_free_memory()  # the synthesis's heap pages, before the model is built
    model = nsa.load_model("sam_vit_l", checkpoint=path, device="cpu")
    path.unlink()
    predictor = nsa.Predictor(model)
    predictor.set_image(np.array(Image.open(parity_dir / "images" / "skimage_chelsea.png")))
    ours = predictor.features.numpy()
    del model, predictor
    with np.load(parity_dir / "sam_vit_l" / "embedding.npz") as npz:
        ref = npz["chelsea__image_embedding"].astype(np.float32)
    # sam_vit_l README: "Suggested check: atol 1e-2, rtol 1e-3 against your float32 embedding"
    np.testing.assert_allclose(ours, ref, atol=1e-2, rtol=1e-3)
