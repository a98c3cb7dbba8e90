"""Parity with the official FastSAM-s/x and MobileSAMv2 object-aware pipelines, stage by stage.

Tolerances are the ones the case READMEs suggest (quoted next to each check).  Post-processing
stages are fed the *reference* head output so that near-tied scores cannot reorder rows; end to
end, rows are matched as a set (README: "adjacent near-ties swapped").
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_segany.engine.detection import fastsam as F, yolo as D
from napari_segany.engine.weights.ultralytics_reader import read_ultralytics_checkpoint
from napari_segany.models.yolo.build import build_yolov8
from napari_segany.models.yolo.keys import map_ultralytics_keys

from _parity_match import assert_detections_match

pytestmark = pytest.mark.parity

CASES = ("fastsam_s", "fastsam_x", "mobilesamv2_objectaware")
FASTSAM = ("fastsam_s", "fastsam_x")
FILES = {"fastsam_s": "FastSAM-s.synth-seed0.pt", "mobilesamv2_objectaware": "ObjectAwareModel.synth-seed0.pt"}
ORDER = {"fastsam_s": "rgb", "fastsam_x": "rgb", "mobilesamv2_objectaware": "bgr"}


def _with_dfl_kernel(sd: dict) -> dict:
    """README: the only override is the DFL 1x1 conv, the constant arange(reg_max)."""
    sd = dict(sd)
    key = "model.22.dfl.conv.weight"
    sd[key] = torch.arange(sd[key].shape[1], dtype=torch.float32).view(1, -1, 1, 1).half()
    return sd


@pytest.fixture(scope="module")
def models(parity_dir, synth_state_dict):
    """Float32 eval networks prepared as load_model does (reader -> build -> strict load -> prepare)."""
    out = {}
    for case in CASES:
        if case in FILES:
            sd, config = read_ultralytics_checkpoint(parity_dir / case / FILES[case])
        else:  # fastsam_x ships no file: synthesize its weights from the schema
            sd = _with_dfl_kernel(synth_state_dict(case))
            config = {"scale": "x", "reg_max": 16, "nm": 32, "npr": 320, "has_proto": True}
        model = build_yolov8(**config, input_channel_order=ORDER[case])
        model.load_state_dict(map_ultralytics_keys(sd), strict=True)
        out[case] = model.float().eval().prepare_for_inference()  # Conv+BN fusion
    return out


@pytest.fixture(scope="module")
def cases(parity_dir):
    return {case: dict(np.load(parity_dir / case / "case.npz")) for case in CASES}


@pytest.fixture(scope="module")
def forwards(models, cases):
    """Our letterboxed input and head outputs per case (one forward each)."""
    out = {}
    for case in CASES:
        x, geo = D.model_input(cases[case]["image_rgb"], 1024, ORDER[case])
        pred, protos = D.run_network(models[case], x)
        out[case] = (x, geo, pred[0], None if protos is None else protos[0])
    return out


def _unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


@pytest.mark.parametrize("case", CASES)
def test_letterbox_input_is_exact(case, forwards, cases):
    # README: "input_letterbox_u8: exact (it is cv2.resize INTER_LINEAR output)"
    x = forwards[case][0]
    ours = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(ours, cases[case]["input_letterbox_u8"])


def _check_head(pred: np.ndarray, protos, ref: dict) -> None:
    assert pred.shape == ref["pred_raw"].shape
    # README: "pred_raw boxes rows 0-3: atol 5e-3 px, rtol 1e-5; score row 4: atol 2e-6;
    # coefficient rows 5-36: atol 2e-6, rtol 1e-3; protos ...: atol 2e-6, rtol 1e-3"
    np.testing.assert_allclose(pred[:4], ref["pred_raw"][:4], atol=5e-3, rtol=1e-5)
    np.testing.assert_allclose(pred[4], ref["pred_raw"][4], atol=2e-6, rtol=0)
    np.testing.assert_allclose(pred[5:], ref["pred_raw"][5:], atol=2e-6, rtol=1e-3)
    if protos is not None:
        np.testing.assert_allclose(protos.numpy(), ref["protos"], atol=2e-6, rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_head_output(case, forwards, cases):
    _check_head(forwards[case][2].numpy(), forwards[case][3], cases[case])


def test_channels_last_head_output(models, forwards, cases):
    """The opt-in channels-last layout stays within the head tolerances (only end-to-end
    ordering of near-tied random-weight scores can change, hence off by default)."""
    model = models["fastsam_s"]
    model.set_channels_last(True)
    try:
        pred, protos = D.run_network(model, forwards["fastsam_s"][0])
    finally:
        model.set_channels_last(False)
    _check_head(pred[0].numpy(), protos[0], cases["fastsam_s"])


@pytest.mark.parametrize("case", CASES)
def test_boxes_from_reference_head(case, forwards, cases):
    ref, geo = cases[case], forwards[case][1]
    pred = torch.from_numpy(ref["pred_raw"])
    nms_out = D.nms_detections(pred, conf=0.4, iou=0.9, max_det=300, nc=1)
    # README (a): "same rows, same order; boxes atol 1e-3 px"
    assert nms_out.shape == ref["nms_out"].shape
    np.testing.assert_allclose(nms_out[:, :4].numpy(), ref["nms_out"][:, :4], atol=1e-3, rtol=0)
    np.testing.assert_allclose(nms_out[:, 4:].numpy(), ref["nms_out"][:, 4:], atol=2e-6, rtol=1e-3)
    if case in FASTSAM:
        dets, boxes = F.fastsam_boxes(pred, geo, 0.4, 0.9, 300)
        pre_scale, scores = dets[:, :4], dets[:, 4]
    else:
        pre_scale = D.snap_to_border(nms_out[:, :4].clone(), geo.input_shape)
        boxes, scores = D.detector_postprocess(pred, geo, 0.4, 0.9, 300)
    np.testing.assert_allclose(pre_scale.numpy(), ref["pre_scale_boxes"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(boxes.numpy(), ref["boxes_final"][:, :4], atol=1e-3, rtol=0)
    np.testing.assert_allclose(scores.numpy(), ref["boxes_final"][:, 4], atol=2e-6, rtol=0)


@pytest.mark.parametrize("case", FASTSAM)
def test_masks_from_reference_head(case, forwards, cases):
    ref, geo = cases[case], forwards[case][1]
    h, w = ref["image_rgb"].shape[:2]
    pred, protos = torch.from_numpy(ref["pred_raw"]), torch.from_numpy(ref["protos"])
    dets, boxes = F.fastsam_boxes(pred, geo, 0.4, 0.9, 300)
    window = F.proto_window(protos, (h, w)).numpy()
    top = ref["mask_logits_top"]
    ref_masks = _unpack(ref["masks_packed"], w)
    for i in range(len(top)):
        region, (x0, y0, x1, y1) = F.mask_region_logits(window, dets[i, 6:].numpy(), boxes[i].tolist(), (h, w))
        logits = np.zeros((h, w), np.float32)
        logits[y0:y1, x0:x1] = region
        # README: "mask_logits_top: atol 2e-6, rtol 1e-3"
        np.testing.assert_allclose(logits, top[i], atol=2e-6, rtol=1e-3)
        # README: "for the first K rows flips allowed only where |reference logit| < 1e-5"
        flips = (logits > 0) != ref_masks[i]
        assert (np.abs(top[i][flips]) < 1e-5).all()
    result = F.fastsam_postprocess(pred, protos, geo)
    ours = result.masks()
    # README: "for all rows <= 0.5 % differing pixels per mask"
    assert ours.shape == ref_masks.shape
    assert ((ours != ref_masks).mean(axis=(1, 2)) <= 0.005).all()


@pytest.mark.parametrize("case", FASTSAM)
def test_fastsam_everything_end_to_end(case, models, cases):
    ref = cases[case]
    h, w = ref["image_rgb"].shape[:2]
    result = F.fastsam_everything(ref["image_rgb"], models[case], conf=0.4, iou=0.9, imgsz=1024, max_det=300)
    # README (b): "match rows as a set (box atol 0.05 px and score atol 1e-5, any order) and
    # require >= 99 % matched; compare each matched mask allowing <= 0.5 % differing pixels";
    # rows left over by near-tied scores are explained by the tie rules of _parity_match.
    match = assert_detections_match(result.boxes, result.scores, ref["boxes_final"][:, :4],
                                    ref["boxes_final"][:, 4], max_det=300)
    ref_masks = _unpack(ref["masks_packed"], w)
    for i, j in match.pairs.items():
        assert (result.mask(i) != ref_masks[j]).mean() <= 0.005


def test_detector_end_to_end(models, cases):
    ref = cases["mobilesamv2_objectaware"]
    boxes, scores = D.detect_objects(ref["image_rgb"], models["mobilesamv2_objectaware"],
                                     conf=0.4, iou=0.9, imgsz=1024, max_det=300)
    assert_detections_match(boxes, scores, ref["boxes_final"][:, :4], ref["boxes_final"][:, 4], max_det=300)


@pytest.mark.parametrize("threads, channels_last", [(1, False), (1, True), (2, True)])
@pytest.mark.parametrize("case", ("mobilesamv2_objectaware", "fastsam_s"))
def test_end_to_end_under_cpu_noise(models, cases, case, threads, channels_last):
    """Another summation order (1 thread, channels-last convolutions) stands in for another CPU:
    on the machine this test was written on, 1 thread kept only 280/300 detector rows in strict
    matching (the failure reported from an AMX Xeon); the tie rules must explain every leftover."""
    ref, model = cases[case], models[case]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    model.set_channels_last(channels_last)
    try:
        if case in FASTSAM:
            result = F.fastsam_everything(ref["image_rgb"], model, conf=0.4, iou=0.9, imgsz=1024, max_det=300)
            boxes, scores = result.boxes, result.scores
        else:
            boxes, scores = D.detect_objects(ref["image_rgb"], model, conf=0.4, iou=0.9, imgsz=1024, max_det=300)
    finally:
        model.set_channels_last(False)
        torch.set_num_threads(before)
    assert_detections_match(boxes, scores, ref["boxes_final"][:, :4], ref["boxes_final"][:, 4], max_det=300)


@pytest.mark.parametrize("case", FASTSAM)
def test_point_and_box_prompts(case, forwards, cases):
    ref, geo = cases[case], forwards[case][1]
    w = ref["image_rgb"].shape[1]
    result = F.fastsam_postprocess(torch.from_numpy(ref["pred_raw"]), torch.from_numpy(ref["protos"]), geo)
    point_mask = F.fastsam_point_prompt(result, ref["point_prompt_points"], ref["point_prompt_labels"])
    np.testing.assert_array_equal(point_mask[None], _unpack(ref["point_prompt_mask_packed"], w))
    single = _unpack(ref["box_prompt_masks_packed"], w)
    for i, box in enumerate(ref["box_prompt_boxes_xyxy"]):
        masks, _ = F.fastsam_box_prompt(result, [box])
        np.testing.assert_array_equal(masks[0], single[i])
    masks, _ = F.fastsam_box_prompt(result, ref["box_prompt_boxes_xyxy"])
    np.testing.assert_array_equal(masks, _unpack(ref["box_prompt_multi_masks_packed"], w))


@pytest.mark.parametrize("case", sorted(FILES))
def test_load_model_contract(case, parity_dir):
    """The lead's loader: reader -> spec.build(**config) -> strict load -> float/eval -> fusion."""
    from napari_segany.engine.weights import load_model

    model = load_model(case, checkpoint=parity_dir / case / FILES[case], device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # fused
    assert D.official_channel_order(model) == ORDER[case]
    assert model.head.reg_max == (16 if case == "fastsam_s" else 26)
