"""The Segment Anything widget driven as a user drives it: sample, clicks, boxes, preview,
commit, undo, slices, cancel, errors.  Tiny SAM with synthesized weights (conftest)."""
from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_segany.gui.shared.labels_io import LABELS_NAME, PREVIEW_NAME
from napari_segany.gui.interactive.prompt_layers import BOXES_NAME, POINTS_NAME

pytestmark = pytest.mark.gui


def load(widget, checkpoint, name="tiny_sam"):
    widget.set_model(name, checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None, "the model did not load"


def click(widget, rc, positive=True):
    """A user's click: a point added to the Points layer (data coordinates, nD)."""
    widget.prompts.add_points([rc], positive)
    widget.wait()


def preview(viewer):
    return viewer.layers[PREVIEW_NAME].data


def press(provider, key):
    """Run what the keymap of a layer or the viewer binds to ``key``."""
    for binding, func in provider.keymap.items():
        if str(binding) == key:
            return func(provider)
    raise KeyError(key)


def test_opens_on_the_sample_and_shows_models_with_license_and_weights(open_widget):
    viewer, widget = open_widget(sample="cell_2d")
    names = [layer.name for layer in viewer.layers]
    assert names[0] == "cell (2D)"
    assert {LABELS_NAME, PREVIEW_NAME, POINTS_NAME, BOXES_NAME} <= set(names)
    assert viewer.layers[LABELS_NAME].data.shape == viewer.layers[0].data.shape
    assert viewer.layers.selection.active.name == POINTS_NAME
    assert viewer.layers[POINTS_NAME].mode == "add"
    panel = widget.model_panel
    models = [panel.model_combo.itemText(i) for i in range(panel.model_combo.count())]
    assert "tiny_sam" in models and "fastsam_s" in models  # FastSAM: prompts select masks
    assert "mobilesamv2_objectaware" not in models  # a detector has no masks to select
    panel.model_combo.setCurrentText("fastsam_s")
    assert "AGPL-3.0" in panel.info.text()  # the weights' license is shown before loading
    panel.model_combo.setCurrentText("offline_sam")
    assert "License: Apache-2.0" in panel.info.text() and "missing" in panel.info.text()
    # the same pair comes back on a second call
    assert viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")[1] is widget


def test_click_preview_commit_undo(open_widget, tiny_checkpoint, qtbot):
    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    click(widget, (300, 250))
    assert len(widget.cache) == 1  # the embedding was computed (in a worker) and cached
    shown = preview(viewer) > 0
    assert shown.any()
    assert np.array_equal(shown, widget.masks[0].full(shown.shape))
    labels = viewer.layers[LABELS_NAME]
    qtbot.mouseClick(widget.commit_button, Qt.MouseButton.LeftButton)
    assert labels.data.max() == 1 and np.array_equal(labels.data > 0, shown)
    assert len(viewer.layers[POINTS_NAME].data) == 0 and not preview(viewer).any()
    labels.undo()  # what Ctrl+Z does on the Labels layer
    assert labels.data.max() == 0
    labels.redo()
    assert labels.data.max() == 1


def test_refinement_click_reuses_the_embedding_and_feeds_back_logits(open_widget, tiny_checkpoint,
                                                                     monkeypatch):
    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    click(widget, (300, 250))
    calls = []
    original = widget.predictor.decode_lowres

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(widget.predictor, "decode_lowres", spy)
    encode = widget.predictor.encode
    monkeypatch.setattr(widget.predictor, "encode", lambda *a: pytest.fail("re-encoded"))
    click(widget, (100, 100), positive=False)
    (points, labels, box, mask_input, multimask) = calls[-1]
    assert labels.tolist() == [1, 0] and mask_input is not None and multimask is False
    assert np.allclose(points[1], [100, 100])  # x, y of the napari (row, col) click
    monkeypatch.setattr(widget.predictor, "encode", encode)


def test_refinement_is_optional_and_off_for_models_without_mask_prompts(
        open_widget, tiny_checkpoint, monkeypatch):
    """The 'Refine with the previous mask' box: unticked, an added point decodes without
    mask_input; a model that takes no mask prompt (EfficientSAM) disables the box."""
    import dataclasses

    from napari_segany.models import registry

    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    assert widget.refine_check.isEnabled() and widget.refine_check.isChecked()
    widget.refine_check.setChecked(False)
    click(widget, (300, 250))
    calls = []
    original = widget.predictor.decode_lowres
    monkeypatch.setattr(widget.predictor, "decode_lowres",
                        lambda *a, **k: calls.append(a) or original(*a, **k))
    click(widget, (100, 100), positive=False)
    assert calls and calls[-1][3] is None  # mask_input
    widget.discard()
    no_mask = dataclasses.replace(registry.REGISTRY["tiny_sam"], supports_mask_input=False)
    monkeypatch.setitem(registry.REGISTRY, "tiny_sam", no_mask)
    load(widget, tiny_checkpoint)
    assert not widget.refine_check.isEnabled() and not widget.refine_check.isChecked()
    click(widget, (300, 250))
    click(widget, (100, 100), positive=False)  # decodes: no mask prompt is ever sent
    assert widget.masks


def test_candidates_cycle_with_n(open_widget, tiny_checkpoint):
    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    click(widget, (300, 250))
    first = widget.masks[0]
    assert first.n_candidates == 3
    press(viewer.layers[POINTS_NAME], "N")
    second = widget.masks[0]
    assert second.candidate == (first.candidate + 1) % 3
    assert np.array_equal(preview(viewer) > 0, second.full(preview(viewer).shape))


def test_t_toggles_the_sign_of_the_next_points(open_widget, tiny_checkpoint):
    viewer, widget = open_widget(sample="cell_2d")
    points = viewer.layers[POINTS_NAME]
    press(points, "T")
    points.add([300, 250])
    press(viewer, "T")
    points.add([310, 250])
    signs = points.features["positive"].tolist()
    assert signs == [False, True]
    assert np.allclose(points.face_color[0], [1, 32 / 255, 32 / 255, 1])
    assert "positive" in widget.sign_label.text()


def test_commit_preserves_objects_gets_new_ids_and_discard(open_widget, fake_checkpoint):
    image = np.zeros((64, 96), np.uint8)
    viewer, widget = open_widget(image)
    existing = np.zeros((64, 96), np.uint16)
    existing[20:30, 40:50] = 7
    layer = viewer.add_labels(existing, name="my labels")
    widget.set_labels(layer)
    load(widget, fake_checkpoint, name="fake_sam")
    click(widget, (25, 45))  # a disk around the click, over object 7
    ids = widget.commit()
    assert ids == [8]
    assert (layer.data[20:30, 40:50] == 7).all() and (layer.data == 8).sum() > 0
    click(widget, (50, 20))
    press(viewer, "Shift+C")  # discard
    assert widget.masks == [] and not preview(viewer).any() and layer.data.max() == 8
    click(widget, (25, 45))
    assert widget.commit(preserve=False) == [9] and (layer.data[24:27, 44:47] == 9).all()


def test_each_box_is_an_object_committed_in_one_undo_step(open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    boxes = viewer.layers[BOXES_NAME]
    boxes.add_rectangles([[[5, 5], [25, 30]], [[35, 50], [60, 90]]])
    widget.wait()
    assert len(widget.masks) == 2
    assert set(np.unique(preview(viewer))) == {0, 1, 2}
    labels = viewer.layers[LABELS_NAME]
    assert widget.commit() == [1, 2]
    assert labels.data[15, 15] == 1 and labels.data[50, 70] == 2
    labels.undo()
    assert labels.data.max() == 0


def test_one_object_per_positive_point(open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    widget.split_check.setChecked(True)
    masks = widget.segment(points=[[15, 15], [45, 70], [30, 40]], labels=[1, 1, 0])
    assert len(masks) == 2
    assert widget.commit() == [1, 2]


def test_points_follow_layer_scale_and_translate(open_widget, fake_checkpoint):
    image = np.zeros((64, 96), np.uint8)
    viewer, widget = open_widget(image, scale=(0.5, 2.0), translate=(10, -20))
    load(widget, fake_checkpoint, name="fake_sam")
    points = viewer.layers[POINTS_NAME]
    points.add(points.world_to_data([10 + 0.5 * 40, -20 + 2.0 * 30]))  # world of pixel (40, 30)
    widget.wait()
    r0, r1, c0, c1 = widget.masks[0].bbox
    assert r0 < 40 < r1 and c0 < 30 < c1


def test_zstack_slices_embed_on_demand_and_come_back_from_the_cache(open_widget, tiny_checkpoint):
    viewer, widget = open_widget(sample="nuclei_zstack")
    load(widget, tiny_checkpoint)
    viewer.dims.set_current_step(0, 5)
    click(widget, (5, 128, 128))
    assert len(widget.cache) == 1 and preview(viewer).any()
    viewer.dims.set_current_step(0, 10)
    widget.wait()
    assert widget.masks == [] and not preview(viewer).any()  # nothing prompted on z = 10
    click(widget, (10, 60, 60))
    assert len(widget.cache) == 2
    viewer.dims.set_current_step(0, 5)
    widget.wait()
    assert widget.embeddings.job is None and len(widget.cache) == 2  # from the cache
    assert len(widget.masks) == 1 and preview(viewer).any()
    ids = widget.commit()
    labels = viewer.layers[LABELS_NAME].data
    assert ids == [1] and labels[5].any() and not labels[10].any()
    assert len(viewer.layers[POINTS_NAME].data) == 1  # the prompt on z = 10 stays


def test_4d_rgb_and_channel_first_images(open_widget, fake_checkpoint):
    rng = np.random.default_rng(1)
    viewer, widget = open_widget(rng.integers(0, 255, (2, 3, 40, 50), dtype=np.uint8), name="tzyx")
    load(widget, fake_checkpoint, name="fake_sam")
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    click(widget, (1, 2, 20, 25))
    widget.commit()
    labels = viewer.layers[LABELS_NAME].data
    assert labels.shape == (2, 3, 40, 50) and labels[1, 2].any() and labels.sum() == labels[1, 2].sum()

    rgb = viewer.add_image(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), name="rgb", rgb=True)
    widget.set_image(rgb)
    assert widget.writer.layer.data.shape == (40, 50)  # a new Labels layer for it
    assert widget.segment(points=[[20, 25]])[0].bbox is not None

    channels = viewer.add_image(rng.random((4, 40, 50)).astype(np.float32), name="cyx")
    widget.set_image(channels, channel_first=True, channels=(0, 2))
    assert widget.source.spatial_shape == (40, 50)
    rgb_seen = widget.source.to_rgb(widget.source.read(()))
    assert rgb_seen.shape == (40, 50, 3) and rgb_seen[..., 2].max() == 0  # two channels: R, G
    assert widget.segment(points=[[10, 10]])[0].bbox is not None


def test_contrast_change_and_data_edit_invalidate_the_embedding(open_widget, fake_checkpoint, qtbot):
    viewer, widget = open_widget(np.linspace(0, 1000, 64 * 96).reshape(64, 96).astype(np.float32))
    load(widget, fake_checkpoint, name="fake_sam")
    click(widget, (30, 30))
    assert len(widget.cache) == 1
    image = viewer.layers[0]
    image.contrast_limits = (0, 500)
    qtbot.wait(500)  # the contrast debounce
    widget.wait()
    assert len(widget.cache) == 2
    image.data = image.data[::-1].copy()
    widget.wait()
    assert len(widget.cache) == 3 and len(widget.masks) == 1


def test_cancel_a_running_embedding(open_widget, tiny_checkpoint, qtbot, notes):
    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    slow_blocks(widget, seconds=0.4)
    widget.prompts.add_points([[300, 250]])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=2000)
    job = widget.embeddings.job
    assert widget.cancel_button.isVisible() or not widget.isVisible()
    qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    assert widget.embeddings.job is None and ("info", "Embedding cancelled.") in notes
    with qtbot.waitSignal(job.worker.finished, timeout=5000):
        pass
    assert len(widget.cache) == 0 and widget.masks == []
    assert not preview(viewer).any() and viewer.layers[LABELS_NAME].data.max() == 0


def test_gui_stays_responsive_while_the_encoder_runs(open_widget, tiny_checkpoint, qtbot):
    from qtpy.QtCore import QTimer

    viewer, widget = open_widget(sample="cell_2d")
    load(widget, tiny_checkpoint)
    slow_blocks(widget, seconds=0.3)  # 2 blocks: >= 0.6 s of encoding
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.embeddings.job is not None))
    timer.start(10)
    start = time.perf_counter()
    widget.prompts.add_points([[300, 250]])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=2000)
    progress = []
    widget.embeddings.job.worker.yielded.connect(lambda report: progress.append(report.fraction))
    widget.wait()
    timer.stop()
    assert time.perf_counter() - start > 0.6
    assert sum(ticks) >= 10  # the event loop kept running (a 10 ms timer) during the encoding
    assert progress == [0.5, 1.0] and widget.masks


def test_errors_become_notifications_and_nothing_is_written(open_widget, tiny_checkpoint, notes,
                                                           monkeypatch, qtbot):
    viewer, widget = open_widget(sample="cell_2d")
    widget.prompts.add_points([[300, 250]])
    widget.wait()
    assert notes[-1][0] == "warning" and "Load a model first" in notes[-1][1]
    widget.set_model("offline_sam")  # no file, no URL, empty cache: the message says where
    assert widget.predictor is None
    assert notes[-1][0] == "error" and "offline_sam.pt" in notes[-1][1]
    widget.set_model("tiny_sam", checkpoint="/nonexistent/tiny.pt")
    assert notes[-1][0] == "error" and "not found" in notes[-1][1]
    load(widget, tiny_checkpoint)
    widget.discard()  # the kept prompt was segmented once the model loaded

    def broken(x):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(widget.predictor.model, "encode", broken)
    viewer.layers[0].contrast_limits = (10, 200)  # a new embedding is needed
    qtbot.wait(500)
    click(widget, (300, 250))
    assert notes[-1][0] == "error" and "out of memory" in notes[-1][1]
    assert widget.commit() == [] and viewer.layers[LABELS_NAME].data.max() == 0

    labels = viewer.add_labels(np.zeros((5, 5), np.uint8), name="not an image")
    widget.images.choose(labels)
    assert notes[-1][0] == "error" and "pick an Image layer" in notes[-1][1]
    too_many = viewer.add_image(np.zeros((2, 2, 2, 2, 8, 8), np.uint8), name="6d")
    widget.images.choose(too_many)
    assert notes[-1][0] == "error" and "up to 4" in notes[-1][1]


def test_screenshot_shows_the_preview_overlay(open_widget, fake_checkpoint):
    image = np.full((128, 128), 60, np.uint8)
    viewer, widget = open_widget(image, show=True)
    load(widget, fake_checkpoint, name="fake_sam")
    click(widget, (64, 64))
    viewer.reset_view()
    with_overlay = viewer.screenshot(canvas_only=True, flash=False).astype(int)
    viewer.layers[PREVIEW_NAME].visible = False
    without = viewer.screenshot(canvas_only=True, flash=False).astype(int)
    changed = np.abs(with_overlay - without)[..., :3].sum(-1) > 30
    assert changed.mean() > 0.01  # the mask is drawn in colour over the gray image
    h, w = changed.shape
    assert changed[h // 2, w // 2 + 25]  # ... around the click (the centre of the view)


def slow_blocks(widget, seconds):
    """Make every encoder block sleep (the GIL is released, as during real torch work)."""
    from napari_segany.engine.embeddings.encoding import encoder_steps

    for block in encoder_steps(widget.predictor.model):
        block.register_forward_pre_hook(lambda *_: time.sleep(seconds))


def test_middle_click_adds_one_negative_point(open_widget):
    from dataclasses import dataclass, field

    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    @dataclass
    class Mouse:  # what vispy hands napari for a click
        type: str
        button: int
        position: tuple
        modifiers: tuple = ()
        pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
        is_dragging: bool = False
        view_direction: object = None
        up_direction: object = None
        dims_displayed: tuple = (0, 1)

    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    points = viewer.layers[POINTS_NAME]
    for button, modifiers, position in ((3, (), (10, 10)), (1, (), (20, 20)), (1, ("Control",), (30, 30))):
        for kind, send in (("mouse_press", mouse_press_callbacks), ("mouse_release", mouse_release_callbacks)):
            send(points, ReadOnlyWrapper(Mouse(kind, button, position, modifiers), exceptions=("handled",)))
    assert points.data.tolist() == [[10, 10], [20, 20], [30, 30]]
    assert points.features["positive"].tolist() == [False, True, False]


def test_c_commits_and_prefetch_embeds_the_neighbours(open_widget, fake_checkpoint):
    rng = np.random.default_rng(2)
    viewer, widget = open_widget(rng.integers(0, 255, (5, 48, 64), dtype=np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    widget.prefetch_check.setChecked(True)
    viewer.dims.set_current_step(0, 2)
    click(widget, (2, 20, 30))
    points = viewer.layers[POINTS_NAME]
    press(points, "C")
    labels = viewer.layers[LABELS_NAME].data
    assert labels[2].max() == 1 and labels.sum() == labels[2].sum()
    deadline = time.monotonic() + 10
    while len(widget.cache) < 3 and time.monotonic() < deadline:  # slices 3 and 1, one by one
        widget.wait()
        widget.embeddings.prefetch(widget.source, [(3,), (1,)])
        time.sleep(0.01)
    assert len(widget.cache) == 3
    prefetched = widget.cache.get(widget.embeddings.key_for(widget.source, (3,)))
    viewer.dims.set_current_step(0, 3)
    click(widget, (3, 20, 30))
    assert widget.masks and widget.predictor.features is prefetched.features  # not recomputed


def test_decodes_run_in_a_worker_coalesce_and_drop_stale_results(open_widget, fake_checkpoint,
                                                                  monkeypatch, qtbot):
    import threading

    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    widget.compute_embedding()
    original = widget.predictor.decode_lowres
    calls = []

    def slow(points, labels, *args):
        calls.append((threading.current_thread() is threading.main_thread(), len(labels)))
        time.sleep(0.3)
        return original(points, labels, *args)

    monkeypatch.setattr(widget.predictor, "decode_lowres", slow)
    points = viewer.layers[POINTS_NAME]
    points.add([10, 10])
    qtbot.waitUntil(lambda: widget.decoder.busy, timeout=2000)
    points.add([20, 20])  # while the first decode runs: both wait for it ...
    points.add([30, 30])
    widget.wait()
    assert calls == [(False, 1), (False, 3)]  # ... and are decoded once, off the GUI thread
    assert len(widget.masks) == 1 and preview(viewer).any()

    points.add([40, 40])
    qtbot.waitUntil(lambda: widget.decoder.busy, timeout=2000)
    widget.discard()  # the decode in flight belongs to discarded prompts
    widget.wait()
    assert widget.masks == [] and not preview(viewer).any() and len(points.data) == 0


def test_ctrl_z_on_the_prompt_layers_removes_the_last_prompt_then_undoes_the_commit(
        open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    points = viewer.layers[POINTS_NAME]
    click(widget, (20, 20))
    press(viewer, "C")
    labels = viewer.layers[LABELS_NAME]
    assert labels.data.max() == 1
    click(widget, (40, 60))
    click(widget, (45, 65), positive=False)
    press(points, "Ctrl+Z")
    widget.wait()
    assert points.data.tolist() == [[40, 60]] and len(widget.masks) == 1
    press(points, "Ctrl+Z")
    widget.wait()
    assert len(points.data) == 0 and widget.masks == [] and labels.data.max() == 1
    press(points, "Ctrl+Z")  # no prompt left: the commit is undone
    assert labels.data.max() == 0


def test_in_place_edits_of_the_image_are_noticed_at_the_next_object(open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.zeros((64, 96), np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    click(widget, (20, 20))
    widget.commit()
    viewer.layers[0].data[10:30, 10:30] = 200  # no event from napari for this
    click(widget, (40, 60))
    assert len(widget.cache) == 2


def test_scripted_session_on_the_time_series_sample(open_widget, fake_checkpoint):
    viewer, widget = open_widget(sample="cell_timeseries")
    widget.set_image("cell time series (TYX)")
    widget.set_model("fake_sam", checkpoint=str(fake_checkpoint), device="cpu")
    viewer.dims.set_current_step(0, 3)
    masks = widget.segment(points=[[160, 160]])
    assert len(masks) == 1 and masks[0].full((320, 320))[160, 160]
    assert widget.next_candidate().candidate == 2
    assert widget.commit() == [1]
    labels = widget.writer.layer.data
    assert labels.shape == (12, 320, 320) and labels[3, 160, 160] == 1 and labels.sum() == labels[3].sum()
