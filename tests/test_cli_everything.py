"""``napari-segany everything``: files and folders in, label TIFFs out, a progress bar on
stderr, actionable errors; plus the image readers/writer it uses (engine.images.io)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from _everything import (
    DETECTOR_FILE, FASTSAM_FILE, TINY_SAM, cells_image,
)
from _large_images import big_cells
from PIL import Image

import napari_segany as nsa
from napari_segany.cli import main
from napari_segany.engine.images import io as image_io
from napari_segany.engine.errors import ImageError
from napari_segany.engine.everything.presets import FilterSettings
from napari_segany.models import registry

GRID = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh", "0"]


@pytest.fixture(autouse=True)
def tiny_registered(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM.name, TINY_SAM)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "cells.png"
    Image.fromarray(np.clip(cells_image(), 0, 255).astype(np.uint8)).save(path)
    return path


def tiny_args(tiny_file):
    return ["--model", "tiny_sam", "--checkpoint", str(tiny_file), "--device", "cpu"]


# ----------------------------------------------------------------------------- round trips


def test_png_to_tiff_round_trip_equals_the_api(png, tmp_path, tiny_file, capsys):
    out = tmp_path / "out" / "cells_labels.tif"
    assert main(["everything", str(png), "-o", str(out), *tiny_args(tiny_file), *GRID]) == 0
    labels = tifffile.imread(out)
    image = np.array(Image.open(png))
    model = nsa.load_model(TINY_SAM, checkpoint=tiny_file, device="cpu")
    expected = FilterSettings().apply(nsa.segment_everything(
        image, model, "grid", points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0)).labels
    assert labels.shape == image.shape and labels.dtype == np.uint8
    assert np.array_equal(labels, expected)
    err = capsys.readouterr().err
    assert "100%|" in err and f"objects -> {out}" in err
    assert not list(out.parent.glob(".*"))  # no temporary file left behind


def test_folder_of_images_and_a_stack(tmp_path, tiny_file):
    folder = tmp_path / "in"
    folder.mkdir()
    stack = np.stack([cells_image(seed=s) for s in range(2)]).astype(np.uint16)
    np.save(folder / "stack.npy", stack)
    tifffile.imwrite(folder / "single.tif", cells_image(seed=5).astype(np.float32))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "labels"
    assert main(["everything", str(folder), "-o", str(out), "-q", "--no-filters",
                 *tiny_args(tiny_file), *GRID]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["single_labels.tif", "stack_labels.tif"]
    assert tifffile.imread(out / "stack_labels.tif").shape == stack.shape
    assert tifffile.imread(out / "single_labels.tif").shape == stack.shape[1:]


@pytest.mark.skipif(not DETECTOR_FILE.exists(), reason="../shared/parity is absent")
def test_object_aware_with_a_detector_file(png, tmp_path, tiny_file):
    out = tmp_path / "oa.tif"
    code = main(["everything", str(png), "-o", str(out), "--method", "object_aware",
                 "--detector", str(DETECTOR_FILE), *tiny_args(tiny_file), "-p", "imgsz=256",
                 "--max-det", "5", "--no-filters", "-q"])
    assert code == 0
    labels = tifffile.imread(out)
    assert labels.shape == np.array(Image.open(png)).shape and 0 < labels.max() <= 5


@pytest.mark.skipif(not FASTSAM_FILE.exists(), reason="../shared/parity is absent")
def test_fastsam_from_its_registry_name_and_file(png, tmp_path):
    out = tmp_path / "fs.tif"
    code = main(["everything", str(png), "-o", str(out), "--method", "fastsam", "--checkpoint",
                 str(FASTSAM_FILE), "--device", "cpu", "-p", "imgsz=256", "-q"])
    assert code == 0 and tifffile.imread(out).shape == np.array(Image.open(png)).shape


def test_large_image_runs_tile_by_tile_equal_to_the_api(tmp_path, tiny_file, capsys):
    from napari_segany.engine.everything import segment_everything_tiled

    image = big_cells()
    png = tmp_path / "big.png"
    Image.fromarray(image).save(png)
    out = tmp_path / "big_labels.tif"
    tiling = ["--tile", "256", "--halo", "32", "--tile-threshold", "400"]
    assert main(["everything", str(png), "-o", str(out), *tiny_args(tiny_file), *GRID,
                 *tiling]) == 0
    assert "(tiled: 4 tiles of 256 px, halo 32)" in capsys.readouterr().err
    model = nsa.load_model(TINY_SAM, checkpoint=tiny_file, device="cpu")
    result = segment_everything_tiled(image, model, "grid", tile=256, halo=32, points_per_side=4,
                                      pred_iou_thresh=0, stability_score_thresh=0)
    assert len({tuple(r["crop_box"]) for r in result.records}) > 1  # objects of several tiles
    assert np.array_equal(tifffile.imread(out), FilterSettings().apply(result).labels)
    # the default threshold (2048 px) and --no-tile run it whole
    for extra in ([], [*tiling, "--no-tile"]):
        assert main(["everything", str(png), "-o", str(out), "--overwrite", "-q",
                     *tiny_args(tiny_file), *GRID, *extra]) == 0
        assert "tiled" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors


def test_existing_output_needs_overwrite_or_skip(png, tmp_path, tiny_file, capsys):
    out = tmp_path / "x.tif"
    out.write_bytes(b"precious corrections")
    args = ["everything", str(png), "-o", str(out), *tiny_args(tiny_file), *GRID, "-q"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious corrections"
    assert main(args + ["--skip-existing"]) == 0 and out.read_bytes() == b"precious corrections"
    assert main(args + ["--overwrite"]) == 0 and tifffile.imread(out).ndim == 2


@pytest.mark.parametrize("extra, message", [
    (["-p", "no_such=1"], "Unknown grid parameters"),
    (["--method", "fastsam", "--model", "tiny_sam"], "needs one of fastsam_s"),
    (["--detector", "x.pt"], "--detector is for --method object_aware"),
    (["-p", "oops"], "NAME=VALUE"),
    (["--tile", "64", "--halo", "30"], "leave no core"),
    (["--halo", "-1"], "--halo must be >= 0"),
])
def test_bad_arguments_exit_2_with_a_reason(png, tmp_path, extra, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["everything", str(png), "-o", str(tmp_path / "o.tif"), *extra])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_missing_input_and_detector_say_what_to_do(png, tmp_path, tiny_file, capsys):
    assert main(["everything", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.tif")]) == 2
    assert "neither an image file nor a folder" in capsys.readouterr().err
    assert main(["everything", str(png), "-o", str(tmp_path / "o.tif"), "--method", "object_aware",
                 *tiny_args(tiny_file)]) == 2
    assert "ObjectAwareModel.pt" in capsys.readouterr().err


def test_many_inputs_need_an_output_folder(png, tmp_path, capsys):
    other = tmp_path / "b.png"
    other.write_bytes(png.read_bytes())
    assert main(["everything", str(png), str(other), "-o", str(tmp_path / "o.tif")]) == 2
    assert "give a folder as -o" in capsys.readouterr().err


# ----------------------------------------------------------------------------- image_io


@pytest.mark.parametrize("shape, leading, rgb", [
    ((20, 30), (), False), ((20, 30, 3), (), True), ((20, 30, 4), (), True),
    ((5, 20, 30), (5,), False), ((3, 20, 30), (3,), False), ((5, 20, 30, 3), (5,), True),
])
def test_plane_layout(shape, leading, rgb):
    layout = image_io.plane_layout(shape)
    assert (layout.leading, layout.rgb) == (leading, rgb)
    assert len(layout.indices()) == layout.n_planes


def test_plane_layout_refuses_other_shapes():
    with pytest.raises(ImageError, match="Split other axes"):
        image_io.plane_layout((2, 5, 20, 30))


@pytest.mark.parametrize("suffix", [".tif", ".png", ".npy"])
def test_read_what_was_written(tmp_path, suffix):
    data = (np.arange(600).reshape(20, 30) % 251).astype(np.uint8)
    path = tmp_path / f"a{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, data)
    elif suffix == ".png":
        Image.fromarray(data).save(path)
    else:
        np.save(path, data)
    assert np.array_equal(image_io.read_image(path), data)


def test_npy_with_objects_is_refused(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="Python objects"):
        image_io.read_image(path)


@pytest.mark.parametrize("max_id, dtype", [(200, np.uint8), (300, np.uint16), (70000, np.uint32)])
def test_labels_use_the_smallest_unsigned_type(tmp_path, max_id, dtype):
    labels = np.zeros((4, 5), np.int32)
    labels[1, 2] = max_id
    path = image_io.write_labels(tmp_path / "l.tif", labels)
    back = tifffile.imread(path)
    assert back.dtype == dtype and np.array_equal(back, labels)


def test_labels_must_be_tiff(tmp_path):
    with pytest.raises(ImageError, match=".tif"):
        image_io.write_labels(tmp_path / "l.png", np.zeros((2, 2), np.int32))

