"""track_labels on moving disks where one divides; the corrections merge / split / set_parent."""
from __future__ import annotations

import numpy as np
import pytest
from _workflow_data import DIVISION_FRAME, N_FRAMES, disk, dividing_movie

import napari_segany as nsa
from napari_segany.engine.errors import ImageError, SegAnyError
from napari_segany.engine.workflows.tracking import DivisionRule


@pytest.fixture(scope="module")
def movie():
    return dividing_movie()


@pytest.fixture(scope="module")
def result(movie):
    return nsa.track_labels(movie[0])


def track_of(result, centres) -> int:
    """The one track id found at the true centres {t: (y, x)}."""
    ids = {int(result.labels[t][int(y), int(x)]) for t, (y, x) in centres.items()}
    assert len(ids) == 1 and 0 not in ids, ids
    return ids.pop()


def test_tracks_follow_the_cells_and_the_division(result, movie):
    _, truth = movie
    ids = {name: track_of(result, centres) for name, centres in truth.items()}
    assert len(set(ids.values())) == 5  # A, B, its daughters, C: five tracks
    assert sorted(result.track_ids.tolist()) == [1, 2, 3, 4, 5]
    assert result.graph == {ids["B1"]: [ids["B"]], ids["B2"]: [ids["B"]]}
    assert result.frames(ids["B"]).tolist() == list(range(DIVISION_FRAME))
    assert result.frames(ids["B1"]).tolist() == list(range(DIVISION_FRAME, N_FRAMES))
    assert result.frames(ids["C"]).tolist() == list(range(8))
    # ids in order of first appearance (frame, then row-major first pixel): C's top row is
    # above A's, B's daughters appear on frame 5, B1 left of B2
    assert [ids[n] for n in ("C", "A", "B", "B1", "B2")] == [1, 2, 3, 4, 5]


def test_tracks_data_is_napari_ready(result, movie):
    _, truth = movie
    tracks = result.tracks
    assert tracks.shape == (sum(len(c) for c in truth.values()), 4)
    assert np.array_equal(tracks, tracks[np.lexsort((tracks[:, 1], tracks[:, 0]))])
    a = track_of(result, truth["A"])
    rows = tracks[tracks[:, 0] == a]
    np.testing.assert_allclose(rows[:, 2:], [truth["A"][t] for t in range(N_FRAMES)], atol=1e-6)
    assert result.labels.dtype == np.int32 and result.labels.shape == movie[0].shape


def test_lineage_rows(result, movie):
    lineage = result.lineage()
    ids = {name: track_of(result, c) for name, c in movie[1].items()}
    row = {int(r[0]): r.tolist() for r in lineage}
    assert row[ids["B1"]] == [ids["B1"], DIVISION_FRAME, N_FRAMES - 1, ids["B"]]
    assert row[ids["A"]] == [ids["A"], 0, N_FRAMES - 1, 0]


def test_no_divisions_when_disabled(movie):
    plain = nsa.track_labels(movie[0], divisions=False)
    assert plain.graph == {}


def test_a_speck_in_the_old_outline_is_not_a_daughter():
    frames = np.zeros((2, 40, 40), np.int32)
    disk(frames[0], (20, 20), 9, 3)
    disk(frames[1], (20, 22), 9, 8)  # moved by 2 px
    frames[1, 12:14, 12:14] = 5  # a 4 px speck where the cell was
    result = nsa.track_labels(frames)
    assert result.graph == {} and len(result.track_ids) == 2
    assert result.labels[0, 20, 20] == result.labels[1, 20, 22]


def test_division_rule_thresholds(movie):
    strict = nsa.track_labels(movie[0], divisions=DivisionRule(covered=0.99))
    assert strict.graph == {}


def test_split_then_merge_restores(result, movie):
    a = track_of(result, movie[1]["A"])
    cut = nsa.split_track(result, a, 4)
    new = int(result.track_ids.max()) + 1
    assert cut.frames(a).tolist() == [0, 1, 2, 3] and cut.frames(new).tolist() == list(range(4, 10))
    assert (cut.labels[4:] == new).any() and not (cut.labels[4:] == a).any()
    assert (result.labels[4:] == a).any()  # the original is unchanged
    joined = nsa.merge_tracks(cut, new, a)
    assert np.array_equal(joined.labels, result.labels)
    np.testing.assert_array_equal(joined.tracks, result.tracks)
    assert joined.graph == result.graph


def test_split_moves_the_daughters(result, movie):
    b = track_of(result, movie[1]["B"])
    cut = nsa.split_track(result, b, 2)
    new = int(result.track_ids.max()) + 1
    assert sorted(cut.daughters(new)) == sorted(result.daughters(b)) and cut.daughters(b) == []


def test_set_parent_and_its_rules(result, movie):
    ids = {name: track_of(result, c) for name, c in movie[1].items()}
    orphan = nsa.set_parent(result, ids["B1"], None)
    assert ids["B1"] not in orphan.graph and orphan.graph[ids["B2"]] == [ids["B"]]
    with pytest.raises(SegAnyError, match="must end before"):
        nsa.set_parent(result, ids["B1"], ids["A"])
    with pytest.raises(SegAnyError, match="no track 99"):
        nsa.set_parent(result, 99, None)


def test_corrections_refuse_what_would_be_inconsistent(result, movie):
    ids = {name: track_of(result, c) for name, c in movie[1].items()}
    with pytest.raises(SegAnyError, match="both have a mask"):
        nsa.merge_tracks(result, ids["A"], ids["C"])
    with pytest.raises(SegAnyError, match="divides"):
        nsa.merge_tracks(result, ids["B"], ids["B1"])
    with pytest.raises(SegAnyError, match="cut it"):
        nsa.split_track(result, ids["A"], 0)


def test_merge_in_place_changes_the_given_labels(result, movie):
    ids = {name: track_of(result, c) for name, c in movie[1].items()}
    labels = result.labels.copy()
    mine = nsa.TrackingResult(labels, result.tracks, dict(result.graph))
    cut = nsa.split_track(mine, ids["A"], 5, inplace=True)
    assert cut.labels is labels and (labels[5:] != ids["A"]).all()
    assert (result.labels[5:] == ids["A"]).any()


def test_bad_inputs():
    with pytest.raises(ImageError, match="3 dimensions"):
        nsa.track_labels(np.zeros((5, 5), np.int32))
    with pytest.raises(ImageError, match="integer"):
        nsa.track_labels(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="min_iou"):
        nsa.track_labels(np.zeros((2, 5, 5), np.int32), min_iou=1.5)
    empty = nsa.track_labels(np.zeros((3, 5, 5), np.uint16))
    assert empty.tracks.shape == (0, 4) and empty.graph == {} and not empty.labels.any()
