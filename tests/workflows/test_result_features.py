"""Everything-mode results measured mask by mask (overlapping masks each whole) and linked
across slices keeping their records: synthetic masks, no model."""
from __future__ import annotations

import numpy as np
import pytest
from _workflow_data import shuffle_per_slice, spheres

from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.result import EverythingResult, Record
from napari_segany.engine.progress import run
from napari_segany.engine.workflows.features import object_features
from napari_segany.engine.workflows.mask_features import MAX_PLANES, per_object, result_features
from napari_segany.engine.workflows.slices import link_slices
from napari_segany.engine.workflows.volume import iter_link_results


def result_of(masks, scores=None) -> EverythingResult:
    rng = np.random.default_rng(0)
    records = []
    for k, mask in enumerate(masks):
        score = rng.random() if scores is None else scores[k]
        records.append(Record(CompactMask.from_dense(mask), {
            "area": int(mask.sum()), "predicted_iou": score, "stability_score": 1 - score}))
    return EverythingResult(records, masks[0].shape, "grid")


def nested_rectangles(n, shape=(50, 60)):
    """n masks, each inside the previous one (every mask overlaps all others), one empty."""
    masks = []
    for k in range(n):
        mask = np.zeros(shape, bool)
        mask[k:shape[0] - k, 2 * k:shape[1] - k] = True
        masks.append(mask)
    masks.append(np.zeros(shape, bool))
    return masks


def test_each_mask_is_measured_whole_as_object_features_measures_it_alone():
    masks = nested_rectangles(MAX_PLANES + 3)  # more than the packed planes: some alone
    image = np.random.default_rng(1).normal(100, 20, masks[0].shape)
    result = result_of(masks)
    table = result_features(result, image)
    assert table["label"].tolist() == list(range(1, len(masks) + 1))
    for k, mask in enumerate(masks[:-1]):
        alone = object_features(mask.astype(np.int32), image)
        for column in alone:
            if column != "label":
                assert table[column][k] == pytest.approx(alone[column][0], rel=1e-9), column
        assert table["score"][k] == result.records[k]["predicted_iou"]
        assert table["stability"][k] == result.records[k]["stability_score"]
    assert table["area"][-1] == 0 and np.isnan(table["perimeter"][-1])  # the empty mask
    assert not np.isnan(table["score"][-1])


def test_no_masks_gives_the_columns_without_rows():
    table = result_features(EverythingResult([], (10, 10), "grid"), np.ones((10, 10, 3)))
    assert "mean_intensity_2" in table and all(len(v) == 0 for v in table.values())


def test_linked_results_keep_their_records_and_match_link_slices():
    volume = spheres((6, 40, 40), [(2, 12, 12), (3, 28, 26)], [3, 5])
    per_slice = shuffle_per_slice(volume, seed=2)
    results = []
    for plane in per_slice:
        ids = [i for i in np.unique(plane) if i]
        masks = [plane == i for i in ids] or [np.zeros(plane.shape, bool)]
        results.append(result_of(masks))
    tables = run(iter_link_results(results, 0.5))
    painted = np.stack([ids[r.paint()] for ids, r in zip(tables, results)])
    assert np.array_equal(painted, link_slices(np.stack([r.labels for r in results]), 0, 0.5))
    assert len(np.unique(painted)) == 3  # two spheres and the background
    assert all(ids[0] == 0 and len(ids) == len(r) + 1 for ids, r in zip(tables, results))


def test_a_mask_hidden_under_smaller_ones_gets_an_id_of_its_own():
    small = np.zeros((20, 20), bool)
    small[5:10, 5:10] = True
    results = [result_of([small.copy(), small.copy()]) for _ in range(2)]  # a duplicate
    tables = run(iter_link_results(results, 0.5))
    linked = {int(t[1]) for t in tables} | {int(t[2]) for t in tables}
    assert len(linked) == 3 and all(np.count_nonzero(t[1:]) == 2 for t in tables)


def test_per_object_folds_the_planes_of_3d_objects():
    volume = spheres((6, 40, 40), [(2, 12, 12), (3, 28, 26)], [3, 5])
    image = np.random.default_rng(3).normal(100, 20, volume.shape)
    rows = object_features(volume, image, scores={1: 0.5, 2: 0.9})
    objects = per_object(rows)
    assert objects["label"].tolist() == [1, 2]
    for k, label in enumerate(objects["label"]):
        voxels = volume == label
        mine = rows["label"] == label
        assert objects["volume"][k] == voxels.sum() and objects["planes"][k] == mine.sum()
        assert objects["mean_intensity"][k] == pytest.approx(image[voxels].mean(), rel=1e-9)
        assert objects["max_intensity"][k] == image[voxels].max()
        largest = np.argmax(np.where(mine, rows["area"], -1))
        assert objects["plane"][k] == rows["plane"][largest]
        assert objects["area"][k] == rows["area"][largest] == voxels[rows["plane"][largest]].sum()
    assert objects["score"].tolist() == [0.5, 0.9]
