"""The Cell Tracking Challenge format: written, read back, and checked against its rules."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from _workflow_data import dividing_movie

import napari_segany as nsa
from napari_segany.engine.errors import SegAnyError
from napari_segany.engine.workflows.ctc import lineage_problems, mask_problems


@pytest.fixture(scope="module")
def result():
    return nsa.track_labels(dividing_movie()[0])


def read_lbep(path) -> np.ndarray:
    """man_track.txt parsed independently: four space-separated integers per line."""
    rows = [line.split(" ") for line in path.read_text().splitlines() if line]
    assert all(len(r) == 4 for r in rows)
    return np.array(rows, dtype=np.int64)


def check_ctc_rules(folder, prefix="man_track", text="man_track.txt"):
    """The format's rules, checked on the files: one uint16 mask per frame from 000; every
    track on each frame from B to E and on no other; parents end before daughters begin."""
    lbep = read_lbep(folder / text)
    masks = sorted(folder.glob(f"{prefix}*.tif"))
    assert [m.name for m in masks] == [f"{prefix}{t:03d}.tif" for t in range(len(masks))]
    stack = np.stack([tifffile.imread(m) for m in masks])
    assert stack.dtype == np.uint16
    for L, B, E, P in lbep:
        present = [t for t in range(len(stack)) if (stack[t] == L).any()]
        assert present == list(range(B, E + 1)), f"track {L} is not on frames {B}..{E} only"
        if P:
            assert lbep[lbep[:, 0] == P][0, 2] < B, f"parent {P} of {L} ends too late"
    assert len(np.unique(lbep[:, 0])) == len(lbep) and lbep[:, 0].min() >= 1
    return lbep, stack


def test_written_files_follow_the_format(result, tmp_path):
    path = nsa.write_ctc(result, tmp_path)
    assert path == tmp_path / "man_track.txt"
    lbep, stack = check_ctc_rules(tmp_path)
    np.testing.assert_array_equal(lbep, result.lineage())
    np.testing.assert_array_equal(stack, result.labels)
    assert {int(L): int(P) for L, _, _, P in lbep if P} == {d: p[0] for d, p in result.graph.items()}


def test_read_back_is_the_same_result(result, tmp_path):
    nsa.write_ctc(result, tmp_path)
    back = nsa.read_ctc(tmp_path)
    np.testing.assert_array_equal(back.labels, result.labels)
    np.testing.assert_allclose(back.tracks, result.tracks, atol=1e-9)
    assert back.graph == result.graph


def test_results_folder_kind(result, tmp_path):
    path = nsa.write_ctc(result, tmp_path, kind="res")
    assert path.name == "res_track.txt" and (tmp_path / "mask000.tif").is_file()
    check_ctc_rules(tmp_path, "mask", "res_track.txt")
    assert nsa.read_ctc(tmp_path).graph == result.graph


def test_a_gap_is_written_as_a_linked_track(result, tmp_path):
    a = int(result.labels[0, 20, 12])  # cell A: frames 0..9
    gapped = result.labels.copy()
    gapped[4][gapped[4] == a] = 0  # no mask of A on frame 4
    broken = nsa.track_labels(gapped)
    first, later = int(broken.labels[3, 20, 18]), int(broken.labels[5, 20, 22])
    assert first != later
    joined = nsa.merge_tracks(broken, first, later)
    assert joined.frames(first).tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    nsa.write_ctc(joined, tmp_path)
    lbep, _ = check_ctc_rules(tmp_path)
    part = lbep[lbep[:, 3] == first]
    assert part.tolist() == [[lbep[:, 0].max(), 5, 9, first]]
    assert lbep[lbep[:, 0] == first].tolist() == [[first, 0, 3, 0]]


def test_read_refuses_broken_data(result, tmp_path):
    with pytest.raises(SegAnyError, match="No man_track.txt"):
        nsa.read_ctc(tmp_path)
    nsa.write_ctc(result, tmp_path)
    text = tmp_path / "man_track.txt"
    lines = text.read_text().splitlines()
    text.write_text("\n".join(lines[1:]) + "\n")  # a track without its line
    with pytest.raises(SegAnyError, match="in no track line"):
        nsa.read_ctc(tmp_path)
    (tmp_path / "man_track003.tif").unlink()
    text.write_text("\n".join(lines) + "\n")
    with pytest.raises(SegAnyError, match="missing"):
        nsa.read_ctc(tmp_path)


def test_rule_checks():
    assert lineage_problems(np.array([[1, 0, 4, 0], [2, 4, 6, 1]]))[0].startswith("track 2 begins")
    assert "not a track" in lineage_problems(np.array([[2, 1, 3, 7]]))[0]
    labels = np.zeros((2, 4, 4), np.int32)
    labels[0, 0, 0] = 1
    assert mask_problems(np.array([[1, 0, 1, 0]]), labels) == ["frame 1: tracks [1] have no mask"]


def test_write_refuses_ids_above_16_bits(result, tmp_path):
    big = nsa.split_track(result, 1, 3)
    relabelled = big.labels.copy()
    relabelled[relabelled == 6] = 70_000
    tracks = big.tracks.copy()
    tracks[tracks[:, 0] == 6, 0] = 70_000
    with pytest.raises(SegAnyError, match="16-bit"):
        nsa.write_ctc(nsa.TrackingResult(relabelled, tracks, big.graph), tmp_path)
