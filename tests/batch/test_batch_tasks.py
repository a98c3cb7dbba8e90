"""Batch tasks in one process (synchronous / threads): auto3d, track and embed against the
engine functions they distribute, axes and channels, OME-Zarr inputs, the output's NGFF
metadata and objects.csv, dry runs, resuming rules, torch's settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from _batch_data import PARAMS, cli_model, labels_of, model_options, write_inputs
from _everything import TINY_SAM, cells_image

import napari_segany as nsa
from napari_segany.cli import main
from napari_segany.engine.everything.presets import NO_FILTERS

CONTRAST = (90.0, 230.0)


@pytest.fixture(scope="module")
def model(checkpoint):
    return nsa.load_model(TINY_SAM, checkpoint=checkpoint, device="cpu")


@pytest.fixture
def stack(tmp_path):
    data = np.stack([cells_image(seed=0, shape=(64, 80))] * 2 + [cells_image(seed=1, shape=(64, 80))])
    np.save(tmp_path / "stack.npy", data)
    return tmp_path / "stack.npy", data


def test_auto3d_equals_segment_volume(stack, tmp_path, checkpoint, model):
    path, data = stack
    summary = nsa.batch(path, tmp_path / "out", "auto3d", scheduler="synchronous",
                        filters=NO_FILTERS, contrast_limits=CONTRAST, **model_options(checkpoint))
    assert summary.ok
    expected = nsa.segment_volume(data, model, "grid", link_iou=0.5, contrast_limits=CONTRAST,
                                  **PARAMS)
    assert np.array_equal(labels_of(tmp_path / "out", "stack"), expected)


def test_track_equals_track_labels(stack, tmp_path, checkpoint, model):
    path, data = stack
    summary = nsa.batch(path, tmp_path / "out", "track", scheduler="threads",
                        filters=NO_FILTERS, contrast_limits=CONTRAST, **model_options(checkpoint))
    assert summary.ok
    frames = np.stack([r.labels for r in nsa.segment_stack(data, model, "grid",
                                                           contrast_limits=CONTRAST, **PARAMS)])
    expected = nsa.track_labels(frames, min_iou=0.3, divisions=True)
    assert np.array_equal(labels_of(tmp_path / "out", "stack"), expected.labels)
    lineage = np.loadtxt(tmp_path / "out" / "stack_lineage.csv", delimiter=",", skiprows=1,
                         ndmin=2)
    assert np.array_equal(lineage.astype(np.int64), expected.lineage())


def test_embed_fills_the_store_napari_segany_embed_uses(stack, tmp_path, checkpoint, capsys):
    path, _ = stack
    out = tmp_path / "out"
    assert main(["batch", "embed", str(path), "-o", str(out), "-q", "--scheduler", "threads",
                 "--model", "tiny_sam", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert main(["embed", str(path), "--out", str(out / "embeddings"), "-q", "--model",
                 "tiny_sam", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 0
    assert "0 embedding(s) computed, 3 reused" in capsys.readouterr().err


def test_channel_axes_and_an_ome_zarr_input(tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 200, (2, 2, 3, 64, 80)).astype(np.uint16)  # T C Z Y X
    data[1, 1, 2] = (cells_image(seed=3, shape=(64, 80))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", data, compression="zlib", photometric="minisblack")  # not memory-mappable
    tifffile.imwrite(tmp_path / "one.tif", data[1, 1, 2])
    options = dict(scheduler="synchronous", contrast_limits=CONTRAST, **model_options(checkpoint))
    assert nsa.batch(tmp_path / "movie.tif", tmp_path / "out", axes="TCZYX", channel=1,
                     **options).ok
    assert nsa.batch(tmp_path / "one.tif", tmp_path / "one", **options).ok
    labels = labels_of(tmp_path / "out", "movie")
    assert labels.shape == (2, 3, 64, 80)
    one = labels_of(tmp_path / "one", "one")
    assert np.array_equal(labels[1, 2] > 0, one > 0)  # the same masks, ids shifted by 5 planes
    # the output is an OME-Zarr image itself: read its level 1 with the axes it records
    summary = nsa.batch(tmp_path / "out" / "movie.ome.zarr", tmp_path / "again", level=1,
                        **options)
    assert summary.ok and labels_of(tmp_path / "again", "movie").shape == (2, 3, 32, 40)


def _check_multiscales(attrs: dict, arrays: dict) -> list:
    """The NGFF 0.4 rules for "multiscales" (https://ngff.openmicroscopy.org/0.4/)."""
    (ms,) = attrs["multiscales"]
    assert ms["version"] == "0.4"
    axes = ms["axes"]
    types = [a["type"] for a in axes]
    assert 2 <= len(axes) <= 5 and len({a["name"] for a in axes}) == len(axes)
    assert 2 <= types.count("space") <= 3 and types == sorted(
        types, key=["time", "channel", "space"].index)
    for level, dataset in enumerate(ms["datasets"]):
        (scale,) = dataset["coordinateTransformations"]
        assert scale["type"] == "scale" and len(scale["scale"]) == len(axes)
        array = arrays[dataset["path"]]
        assert array.ndim == len(axes) and array.metadata.zarr_format == 2
        assert scale["scale"][-1] == 2 ** level
    return ms["datasets"]


def test_output_is_valid_ngff_and_objects_csv_matches_the_labels(tmp_path, checkpoint):
    import zarr

    inputs = write_inputs(tmp_path / "in")
    summary = nsa.batch(inputs, tmp_path / "out", scheduler="synchronous",
                        **model_options(checkpoint))
    assert summary.ok
    root = zarr.open_group(str(tmp_path / "out" / "stack.ome.zarr"), mode="r")
    image_levels = _check_multiscales(dict(root.attrs), dict(root.arrays()))
    assert dict(root["labels"].attrs)["labels"] == ["segany"]
    segany = root["labels/segany"]
    label_levels = _check_multiscales(dict(segany.attrs), dict(segany.arrays()))
    assert len(label_levels) == len(image_levels) == 2
    assert dict(segany.attrs)["image-label"] == {"version": "0.4", "source": {"image": "../../"}}
    assert np.dtype(segany["0"].dtype).kind == "u"
    assert json.loads((tmp_path / "out/stack.ome.zarr/0/.zarray").read_text())[
        "dimension_separator"] == "/"
    rows = np.genfromtxt(tmp_path / "out" / "objects.csv", delimiter=",", names=True,
                         dtype=None, encoding=None)
    for stem, name in (("stack", "stack.npy"), ("field", "field.tif")):
        labels = labels_of(tmp_path / "out", stem).reshape(-1, *labels_of(tmp_path / "out", stem).shape[-2:])
        mine = rows[rows["input"] == name]
        for row in mine:
            mask = labels[row["plane"]] == row["label"]
            ys, xs = np.nonzero(mask)
            assert row["area"] == mask.sum()
            assert (row["bbox_y0"], row["bbox_y1"]) == (ys.min(), ys.max() + 1)
            assert abs(row["centroid_x"] - xs.mean()) < 1e-9
        assert sorted(mine["label"]) == sorted(set(np.unique(labels)) - {0})


def test_dry_run_lists_the_tasks_and_writes_nothing(tmp_path, checkpoint, capsys):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["batch", "everything", str(inputs), "-o", str(out), "--dry-run",
                 *cli_model(checkpoint)]) == 0
    captured = capsys.readouterr()
    assert "todo  plane-stack-2" in captured.out and "todo  finish-field" in captured.out
    assert "nothing was run" in captured.err and not out.exists()


def test_other_settings_are_refused_and_overwrite_starts_again(tmp_path, checkpoint, capsys):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    args = ["batch", "everything", str(inputs / "cells.png"), "-o", str(out), "-q",
            "--scheduler", "synchronous", *cli_model(checkpoint)]
    assert main(args) == 0
    assert main([*args, "--min-area", "7"]) == 2
    assert "other settings (changed: filters)" in capsys.readouterr().err
    assert main([*args, "--min-area", "7", "--overwrite"]) == 0
    assert "1 task(s) computed" not in capsys.readouterr().err  # every task ran again


def test_the_callers_torch_settings_are_left_alone(tmp_path, checkpoint):
    from napari_segany.engine import torch_state

    inputs = write_inputs(tmp_path / "in")
    before = torch_state.snapshot()
    assert nsa.batch(inputs, tmp_path / "out", scheduler="threads", **model_options(checkpoint)).ok
    assert torch_state.snapshot() == before


KILLED_RUN = """
import sys
sys.path[:0] = {paths!r}
from _everything import TINY_SAM
from napari_segany.models import registry
registry.REGISTRY[TINY_SAM.name] = TINY_SAM
from napari_segany.cli import main
sys.exit(main({args!r}))
"""


def test_a_killed_run_resumes_without_duplicates(tmp_path, checkpoint):
    """SIGKILL in the middle of a run (after some plane markers), then the same command."""
    import signal
    import subprocess
    import sys
    import time

    inputs = tmp_path / "in"
    inputs.mkdir()
    np.save(inputs / "big.npy", np.stack([cells_image(seed=s) for s in range(6)]))
    args = ["batch", "everything", str(inputs), "-o", str(tmp_path / "out"), "-q",
            "--scheduler", "synchronous", *cli_model(checkpoint)]
    script = KILLED_RUN.format(paths=sys.path, args=args)
    process = subprocess.Popen([sys.executable, "-c", script])
    state = tmp_path / "out" / ".segany-batch" / "big"
    deadline = time.monotonic() + 300
    while len(list(state.glob("plane-*.json"))) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (state / "done.json").exists()
    assert main(args) == 0
    assert main([*args[:4], str(tmp_path / "whole"), *args[5:]]) == 0
    assert np.array_equal(labels_of(tmp_path / "out", "big"), labels_of(tmp_path / "whole", "big"))
    assert (tmp_path / "out" / "objects.csv").read_text() == \
        (tmp_path / "whole" / "objects.csv").read_text()
