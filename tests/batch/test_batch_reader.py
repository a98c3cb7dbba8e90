"""A batch output opens in napari with its image and labels (our npe2 reader)."""
from __future__ import annotations

import numpy as np
import pytest
from _batch_data import labels_of, model_options, write_inputs

import napari_segany as nsa
from napari_segany.gui.segany_zarr_reader import get_reader


@pytest.fixture(scope="module")
def output(tmp_path_factory, checkpoint):
    root = tmp_path_factory.mktemp("batch")
    inputs = write_inputs(root / "in")
    assert nsa.batch(inputs, root / "out", scheduler="synchronous", **model_options(checkpoint)).ok
    return root / "out"


def test_reader_claims_batch_outputs_only(output, tmp_path):
    assert get_reader(str(output / "stack.ome.zarr")) is not None
    assert get_reader(str(tmp_path)) is None and get_reader([str(output), str(output)]) is None
    image, labels = get_reader(str(output / "stack.ome.zarr"))(str(output / "stack.ome.zarr"))
    assert image[2] == "image" and labels[2] == "labels" and labels[1]["multiscale"]
    assert np.array_equal(np.asarray(labels[0][0]), labels_of(output, "stack"))


@pytest.mark.gui
def test_opens_in_napari(output, make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(output / "field.ome.zarr"), plugin="napari-segany")
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels"]
    assert np.array_equal(np.asarray(layers[1].data[0]), labels_of(output, "field"))
