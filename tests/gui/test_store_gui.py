"""The store panel of the Segment Anything widget: a store folder remembered in the layer's
metadata and reused by a later session, and tiling of slices above the threshold."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.tiling import TiledPredictor
from napari_segany.gui.shared.labels_io import LABELS_NAME
from napari_segany.gui.shared.stores import METADATA_KEY

pytestmark = pytest.mark.gui


def load(widget, checkpoint, name):
    widget.set_model(name, checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None, "the model did not load"


def test_the_store_is_on_by_default_and_remembered_per_layer(open_widget, small_image, tmp_path,
                                                             fake_checkpoint):
    viewer, widget = open_widget(small_image)
    panel = widget.store_panel
    layer = viewer.layers[0]
    assert widget.cache.backing_store is panel.store  # default folder, inside the test cache
    assert panel.store.root == tmp_path / "cache" / "embeddings"
    assert layer.metadata[METADATA_KEY] == str(panel.store.root)
    panel.set_folder(tmp_path / "mine")
    assert layer.metadata[METADATA_KEY] == str(tmp_path / "mine")
    panel.store_check.setChecked(False)
    assert widget.cache.backing_store is None and METADATA_KEY not in layer.metadata
    # another image that names a store: the panel follows it
    other = viewer.add_image(small_image[::-1].copy(), name="other",
                             metadata={METADATA_KEY: str(tmp_path / "theirs")})
    widget.set_image(other)
    assert panel.store_check.isChecked() and panel.store.root == tmp_path / "theirs"


def test_a_later_session_gets_the_embedding_from_the_store(open_widget, small_image, tmp_path,
                                                           tiny_checkpoint):
    folder = tmp_path / "store"
    viewer, widget = open_widget(small_image, metadata={METADATA_KEY: str(folder)})
    load(widget, tiny_checkpoint, "tiny_sam")
    first = widget.segment(points=[[45, 60]])
    widget.store_panel.store.flush(timeout=60)
    assert widget.store_panel.store.writes == 1
    viewer.close()

    # Next day: a new viewer and widget, the same image with the same metadata.
    viewer, widget = open_widget(small_image.copy(), metadata={METADATA_KEY: str(folder)})
    load(widget, tiny_checkpoint, "tiny_sam")
    again = widget.segment(points=[[45, 60]])
    assert widget.store_panel.store.reads == 1 and widget.embeddings.job is None  # no encoder run
    # float16 storage: masks agree up to a few pixels of rounding
    a, b = first[0].full(small_image.shape), again[0].full(small_image.shape)
    assert (a != b).mean() < 0.01


def test_a_slice_above_the_threshold_is_segmented_tile_by_tile(open_widget, fake_checkpoint, tmp_path):
    image = np.random.default_rng(0).integers(0, 50, (300, 400)).astype(np.uint16)
    viewer, widget = open_widget(image)
    panel = widget.store_panel
    panel.threshold_spin.setValue(256)  # the stand-in model's input is 64 px
    load(widget, fake_checkpoint, "fake_sam")
    masks = widget.segment(points=[[150, 200]])
    assert isinstance(widget.session.predictor, TiledPredictor) and widget.image_session.tiled.predictor.encodes == 1
    assert masks[0].bbox is not None
    widget.discard()
    (mask,) = widget.segment(boxes=[[20, 30, 280, 370]])  # across many tiles: stitched
    r0, r1, c0, c1 = mask.bbox
    assert r0 <= 25 and r1 >= 275 and c0 <= 35 and c1 >= 365 and mask.crop.mean() > 0.95
    ids = widget.commit()
    labels = viewer.layers[LABELS_NAME].data
    assert ids == [1] and labels[40:260, 50:350].all() and not labels[:15].any()
    widget.compute_embedding(wait=True)  # the button: every tile of the slice
    tiled = widget.image_session.tiled.predictor
    assert tiled.encodes == len(tiled.grid)
    assert all(key.tiling is not None for key in widget.cache._entries)  # never the whole slice
    panel.threshold_spin.setValue(1000)  # now below the threshold: the plain session again
    widget.segment(points=[[150, 200]])
    assert not isinstance(widget.session.predictor, TiledPredictor) and widget.masks[0].bbox is not None


def test_everything_mode_reuses_the_embeddings_the_interactive_widget_stored(
        open_widget, small_image, tmp_path, tiny_checkpoint):
    folder = tmp_path / "store"
    viewer, widget = open_widget(small_image, metadata={METADATA_KEY: str(folder)})
    load(widget, tiny_checkpoint, "tiny_sam")
    widget.segment(points=[[45, 60]])
    widget.store_panel.store.flush(timeout=60)
    viewer.close()

    # Next day, everything mode on the same image: the embedding comes from the store.
    viewer, _ = open_widget(small_image.copy(), metadata={METADATA_KEY: str(folder)})
    _, every = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    every.set_method("grid")
    every.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu", wait=True)
    encodes = []
    real_encode = every.model.encode
    every.model.encode = lambda x: encodes.append(1) or real_encode(x)
    every.set_params(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    result = every.run()[()]
    store = every.cache.backing_store
    assert store is not None and store.root == folder and store.reads == 1
    assert encodes == [] and result.n_prompts == 16  # no encoder run
