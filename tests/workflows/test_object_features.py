"""Object tables against skimage.measure.regionprops; filters; CSV export."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from _workflow_data import disk
from skimage.measure import regionprops

import napari_segany as nsa
from napari_segany.engine.errors import ImageError


@pytest.fixture(scope="module")
def scene():
    """(Y, X) labels of a disk, an ellipse-ish bar, a square and a single pixel; an image."""
    labels = np.zeros((60, 80), np.int32)
    disk(labels, (15, 15), 10, 4)
    labels[35:40, 5:45] = 9  # a bar
    labels[5:25, 50:70] = 2  # a square
    labels[50, 70] = 7  # one pixel
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, labels.shape).astype(np.float32) + 50 * (labels > 0)
    return labels, image


def test_columns_match_regionprops(scene):
    labels, image = scene
    table = nsa.object_features(labels, image)
    props = {p.label: p for p in regionprops(labels, intensity_image=image)}
    assert table["label"].tolist() == sorted(props)
    for i, label in enumerate(table["label"]):
        p = props[label]
        assert table["area"][i] == p.area
        assert table["perimeter"][i] == pytest.approx(p.perimeter)
        assert table["solidity"][i] == pytest.approx(p.solidity)
        assert table["eccentricity"][i] == pytest.approx(p.eccentricity)
        assert table["mean_intensity"][i] == pytest.approx(p.intensity_mean, rel=1e-6)
        assert table["max_intensity"][i] == pytest.approx(p.intensity_max)
        if p.perimeter:
            assert table["circularity"][i] == pytest.approx(4 * np.pi * p.area / p.perimeter ** 2)
    row = dict(zip(table["label"].tolist(), range(len(table["label"]))))
    assert np.isnan(table["circularity"][row[7]])  # one pixel: no perimeter
    assert table["circularity"][row[4]] > 0.85 > table["circularity"][row[9]]  # disk vs bar
    assert set(table) == {"label", "area", "perimeter", "solidity", "circularity",
                          "eccentricity", "mean_intensity", "max_intensity"}


def test_model_values_by_record_order_or_mapping(scene):
    labels, _ = scene
    scores = np.arange(1, 10) / 10  # label i + 1 -> scores[i]
    table = nsa.object_features(labels, scores=scores, stability={4: 0.95, 9: 0.9})
    np.testing.assert_allclose(table["score"], [0.2, 0.4, 0.7, 0.9])
    np.testing.assert_allclose(table["stability"], [np.nan, 0.95, np.nan, 0.9])
    short = nsa.object_features(labels, scores=[0.5, 0.6])  # labels beyond it: NaN
    np.testing.assert_allclose(short["score"], [0.6, np.nan, np.nan, np.nan])


def test_3d_is_measured_per_plane(scene):
    labels, image = scene
    stack = np.stack([labels, np.where(labels == 4, 0, labels)])
    table = nsa.object_features(stack, np.stack([image, image]),
                                scores=[{4: 0.9}, {2: 0.8}])
    assert table["plane"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert table["label"].tolist() == [2, 4, 7, 9, 2, 7, 9]
    np.testing.assert_allclose(table["score"], [np.nan, 0.9, np.nan, np.nan, 0.8, np.nan, np.nan])
    flat = nsa.object_features(labels, image)
    np.testing.assert_allclose(table["solidity"][4:], flat["solidity"][[0, 2, 3]])


def test_rgb_image_gives_a_column_per_channel(scene):
    labels, image = scene
    table = nsa.object_features(labels, np.stack([image, 2 * image, image], axis=-1))
    np.testing.assert_allclose(table["mean_intensity_1"], 2 * table["mean_intensity_0"], rtol=1e-6)


def test_filter_keeps_the_objects_in_range(scene):
    labels, image = scene
    table = nsa.object_features(labels, image)
    kept = nsa.filter_objects(labels, table, area=(50, None), circularity=(0.8, None))
    assert kept.ids.tolist() == [2, 4]  # the square and the disk; not the bar, not the pixel
    assert kept.keep.tolist() == [True, True, False, False]
    assert set(np.unique(kept.labels)) == {0, 2, 4} and kept.labels.dtype == labels.dtype
    assert np.array_equal(kept.labels[labels == 4], labels[labels == 4])
    assert nsa.filter_objects(labels, table, area=(None, 1), paint=False).labels is None
    everything = nsa.filter_objects(labels, table)
    assert everything.keep.all() and np.array_equal(everything.labels, labels)


def test_filter_per_plane(scene):
    labels, _ = scene
    stack = np.stack([labels, np.where(labels == 4, 0, labels)])
    table = nsa.object_features(stack, scores=[{4: 0.9, 2: 0.3}, {2: 0.8}])
    kept = nsa.filter_objects(stack, table, score=(0.5, 1))
    assert set(np.unique(kept.labels[0])) == {0, 4} and set(np.unique(kept.labels[1])) == {0, 2}


def test_filter_errors(scene):
    labels, _ = scene
    table = nsa.object_features(labels)
    with pytest.raises(ValueError, match="No column 'roundness'"):
        nsa.filter_objects(labels, table, roundness=(0, 1))
    with pytest.raises(ValueError, match="pair"):
        nsa.filter_objects(labels, table, area=50)


def test_csv_export(scene, tmp_path):
    labels, image = scene
    table = nsa.object_features(labels, image)
    path = nsa.write_features_csv(table, tmp_path / "out" / "objects.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(table)
    assert [int(r["label"]) for r in rows] == table["label"].tolist()
    np.testing.assert_allclose([float(r["solidity"]) for r in rows], table["solidity"])
    assert rows[2]["circularity"] == "nan"
    assert not list(tmp_path.glob("out/.*"))  # no temporary left


def test_bad_inputs(scene):
    labels, image = scene
    with pytest.raises(ImageError, match="shape"):
        nsa.object_features(labels, image[:10])
    with pytest.raises(ImageError, match="integer"):
        nsa.object_features(labels.astype(float))
