"""The loader releases its copy of the weights part by part (load_weights(consume=True)):
every tensor of the file must still reach the model, whatever map_keys returns."""
from __future__ import annotations

import torch

import napari_segany as nsa
from _everything import TINY_SAM, random_state_dict


def _assert_loaded(model, state):
    ours = model.state_dict()
    mapped = model.spec.map_keys(dict(state))
    assert set(mapped) <= set(ours)
    for key, tensor in mapped.items():
        torch.testing.assert_close(ours[key], tensor.float(), rtol=0, atol=0, msg=key)


def test_weights_from_a_file_and_from_a_dict_reach_the_model(tmp_path):
    state = random_state_dict(TINY_SAM)
    path = tmp_path / "tiny.pt"
    torch.save(state, path)
    _assert_loaded(nsa.load_model(TINY_SAM, checkpoint=path, device="cpu"), state)
    given = dict(state)
    _assert_loaded(nsa.load_model(TINY_SAM, checkpoint=given, device="cpu"), state)
    assert given.keys() == state.keys()  # the caller's dict is left as it was
