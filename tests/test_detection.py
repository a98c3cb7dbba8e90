"""Detection pipeline pieces without parity data: OpenCV-exact resize, letterbox, NMS, boxes,
and the FastSAM / detector engines on tiny random networks."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from napari_segany.engine.detection import fastsam as F, nms, yolo as D
from napari_segany.models.yolo.build import build_yolov8

# sha256 (first 16 hex) of cv2.resize(..., INTER_LINEAR) outputs, recorded with
# opencv-python-headless 4.10.0 and 5.0.0 (identical); inputs are seeded random images.
CV2_GOLDEN = [
    ((5, 7), (13, 4), "1ce25c6b25f28c70"),
    ((37, 61), (1024, 631), "26db9ce8cdeb96a1"),
    ((61, 37), (631, 1024), "095d9d7d02c3667b"),
    ((64, 48), (32, 24), "2c9f8d9f7d89a2b8"),  # exact 2x down: OpenCV switches to INTER_AREA
    ((300, 451), (1024, 681), "09968c57f3635986"),
    ((1000, 999), (1024, 1023), "fa4a4ad84ffa59dc"),
    ((2, 3), (1024, 683), "29accadceafa02c5"),
    ((9, 700), (1024, 13), "bff38de66d425a90"),
]


@pytest.mark.parametrize("src, dst, digest", CV2_GOLDEN)
def test_resize_matches_recorded_opencv_output(src, dst, digest):
    h, w = src
    img = np.random.default_rng(h * 1000 + w).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = D.resize_linear_u8(img, dst)
    assert out.shape == (dst[1], dst[0], 3)
    assert hashlib.sha256(out.tobytes()).hexdigest()[:16] == digest


def test_resize_keeps_constant_images():
    img = np.full((17, 23, 3), 77, np.uint8)
    assert (D.resize_linear_u8(img, (100, 40)) == 77).all()


@pytest.mark.parametrize("shape, expected", [
    ((200, 600), ((341, 1024), (352, 1024), 5, 0)),   # parity case fastsam_s
    ((300, 451), ((681, 1024), (704, 1024), 11, 0)),  # parity case mobilesamv2_objectaware
    ((1024, 1024), ((1024, 1024), (1024, 1024), 0, 0)),
    ((600, 200), ((1024, 341), (1024, 352), 0, 5)),
    ((2048, 1501), ((1024, 750), (1024, 768), 0, 9)),
])
def test_letterbox_geometry(shape, expected):
    geo = D.letterbox_geometry(shape, 1024)
    assert (geo.resized_shape, geo.input_shape, geo.pad_top, geo.pad_left) == expected


def test_letterbox_pads_with_114():
    img = np.zeros((100, 300, 3), np.uint8)
    boxed, geo = D.letterbox(img, 1024)
    assert boxed.shape == (352, 1024, 3)
    assert (boxed[:geo.pad_top] == 114).all() and (boxed[geo.pad_top:geo.pad_top + 341] == 0).all()


def _reference_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """torchvision.ops.nms, literally (its CPU kernel loop, float32 scalars)."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    b = boxes.numpy().astype(np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    suppressed, keep = np.zeros(len(b), bool), []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            if suppressed[j]:
                continue
            w = max(np.float32(0), min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            h = max(np.float32(0), min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            inter = w * h
            if float(inter / (area[i] + area[j] - inter)) > thr:
                suppressed[j] = True
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_nms_equals_torchvision_semantics(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(300, 2, generator=g) * 50
    wh = torch.rand(300, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[100:120] = boxes[:20] + 0.5  # near duplicates
    scores = (torch.rand(300, generator=g) * 10).round() / 10  # many exact ties
    for thr in (0.3, 0.5, 0.9):
        ref = _reference_nms(boxes, scores, thr)
        assert nms(boxes, scores, thr, block=64).tolist() == ref
        assert nms(boxes, scores, thr, max_keep=7).tolist() == ref[:7]


def test_nms_detections_filters_and_orders():
    # 3 anchors: two overlapping boxes (IoU ~0.96) and one low score; rows cx, cy, w, h, score, 2 coeffs
    pred = torch.tensor([
        [50.0, 50.5, 200.0], [50.0, 50.0, 10.0], [20.0, 20.0, 5.0], [20.0, 20.0, 5.0],
        [0.8, 0.9, 0.1], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0],
    ])
    dets = D.nms_detections(pred, conf=0.4, iou=0.9, max_det=10, nc=1)
    assert dets.shape == (1, 8)
    torch.testing.assert_close(dets[0, :6], torch.tensor([40.5, 40.0, 60.5, 60.0, 0.9, 0.0]))
    assert dets[0, 6:].tolist() == [2.0, 5.0]
    assert len(D.nms_detections(pred, conf=0.95)) == 0


def test_snap_and_scale_boxes():
    boxes = torch.tensor([[10.0, 30.0, 1010.0, 340.0], [100.0, 100.0, 200.0, 200.0]])
    D.snap_to_border(boxes, (352, 1024))
    assert boxes[0].tolist() == [0.0, 30.0, 1024.0, 352.0]
    out = D.scale_boxes((352, 1024), boxes.clone(), (200, 600))
    gain = 1024 / 600
    torch.testing.assert_close(out[1], torch.tensor([100.0, 95.0, 200.0, 195.0]) / gain)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 25 / gain, 600.0, 200.0]))


@pytest.mark.parametrize("bad", [
    np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((1, 10, 3), np.uint8),
])
def test_bad_images_raise_value_error(bad):
    with pytest.raises(ValueError, match="uint8|pixels"):
        D.model_input(bad, 64)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    seg = build_yolov8(scale="n").eval()
    det = build_yolov8(scale="n", reg_max=26, has_proto=False, input_channel_order="bgr").eval()
    for m in (seg, det):
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):  # non-trivial statistics for the fusion test
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return seg, det


def test_fuse_preserves_outputs(tiny_models):
    seg, _ = tiny_models
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        before = seg(x)
        fused = build_yolov8(scale="n").eval()
        fused.load_state_dict(seg.state_dict())
        after = fused.fuse()(x)
    torch.testing.assert_close(after.pred, before.pred, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(after.protos, before.protos, atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


def test_forward_rejects_unpadded_input(tiny_models):
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_models[0](torch.rand(1, 3, 50, 64))


def test_detect_objects_on_random_network(tiny_models):
    _, det = tiny_models
    image = np.random.default_rng(0).integers(0, 256, size=(90, 130, 3), dtype=np.uint8)
    boxes, scores = D.detect_objects(image, det, conf=0.3, iou=0.5, imgsz=128, max_det=20)
    assert boxes.shape == (len(scores), 4) and boxes.dtype == np.float32 and len(scores) <= 20
    assert (np.diff(scores) <= 0).all() and (scores > 0.3).all()
    assert (boxes[:, [0, 2]] <= 130).all() and (boxes[:, [1, 3]] <= 90).all() and (boxes >= 0).all()
    assert D.official_channel_order(det) == "bgr"
    with pytest.raises(ValueError, match="conf"):
        D.detect_objects(image, det, conf=1.5)


def test_fastsam_everything_on_random_network(tiny_models):
    seg, det = tiny_models
    image = np.random.default_rng(1).integers(0, 256, size=(70, 100, 3), dtype=np.uint8)
    res = F.fastsam_everything(image, seg, conf=0.3, iou=0.7, imgsz=96, max_det=15)
    assert len(res) == len(res.boxes) == len(res.scores) <= 15
    full = res.masks()
    assert full.shape == (len(res), 70, 100)
    for i in range(len(res)):
        assert np.array_equal(full[i], res.mask(i))
        x0, y0, x1, y1 = res.boxes[i]
        ys, xs = np.nonzero(full[i])
        assert (xs >= np.floor(x0)).all() and (xs < x1).all() and (ys >= np.floor(y0)).all() and (ys < y1).all()
    coarse = F.fastsam_everything(image, seg, conf=0.3, iou=0.7, imgsz=96, max_det=15, retina_masks=False)
    np.testing.assert_array_equal(coarse.boxes, res.boxes)  # same objects, blockier masks
    np.testing.assert_array_equal(coarse.crop_boxes, res.crop_boxes)
    with pytest.raises(ValueError, match="prototypes"):
        F.fastsam_everything(image, det)


def _handmade_result() -> F.FastSAMResult:
    """Three masks on a 10x12 image: a big one, a small one inside it, one apart."""
    big = np.ones((6, 6), bool)
    small = np.ones((2, 2), bool)
    apart = np.ones((3, 3), bool)
    crop_boxes = np.array([[0, 0, 6, 6], [2, 2, 4, 4], [8, 6, 11, 9]])
    boxes = crop_boxes.astype(np.float32)
    return F.FastSAMResult(boxes, np.array([0.9, 0.8, 0.7], np.float32), crop_boxes,
                           [big, small, apart], (10, 12))


def test_point_prompt_follows_area_order():
    res = _handmade_result()
    fg = F.fastsam_point_prompt(res, [[3, 3]], [1])  # inside big and small: union of both
    assert fg.sum() == 36
    # per mask the points apply in order; the small mask, visited last, removes its pixels
    cut = F.fastsam_point_prompt(res, [[3, 3], [0, 0]], [0, 1])
    assert cut.sum() == 32 and not cut[3, 3]
    assert not F.fastsam_point_prompt(res, [[0, 0], [3, 3]], [1, 0]).any()  # last point wins in big
    with pytest.raises(ValueError, match="outside"):
        F.fastsam_point_prompt(res, [[12, 0]], [1])
    with pytest.raises(ValueError, match="label"):
        F.fastsam_point_prompt(res, [[1, 1]], [2])


def test_box_prompt_picks_best_iou():
    res = _handmade_result()
    assert F.select_by_box(res, [8, 6, 11, 9]) == 2
    assert F.select_by_box(res, [2, 2, 4, 4]) == 1
    masks, picked = F.fastsam_box_prompt(res, [[8, 6, 11, 9], [0, 0, 6, 6], [8.2, 6, 11, 9]])
    assert picked == list({2, 0}) and masks.shape == (2, 10, 12)
    with pytest.raises(ValueError, match="empty"):
        F.select_by_box(res, [5, 5, 5, 9])


# mobilesamv2_objectaware README: "Parameter counts by scale ... n 3,546,021, s 11,970,901,
# m 27,073,157, l 45,196,213, x 70,028,773" (reg_max 26, no proto; BN counters excluded)
@pytest.mark.parametrize("scale, count", [
    ("n", 3_546_021), ("s", 11_970_901), ("m", 27_073_157), ("l", 45_196_213), ("x", 70_028_773),
])
def test_object_aware_architecture_sizes(scale, count):
    with torch.device("meta"):
        sd = build_yolov8(scale=scale, reg_max=26, has_proto=False).state_dict()
    assert sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked")) == count
