"""Batch on a real dask cluster: LocalCluster(n_workers=2, processes=True, threads_per_worker=1)
(one per module: starting worker processes costs seconds), reached by its address
(``--scheduler tcp://...``), against the single-process run and ``napari-segany everything``."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from _batch_data import cli_model, labels_of, model_options, write_inputs

import napari_segany as nsa
from napari_segany.cli import main
from napari_segany.engine.errors import Cancelled


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=":0") as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("inputs") / "in", broken=True)


def _markers(out):
    return {p: p.stat().st_mtime_ns for p in (out / ".segany-batch").rglob("*.json")}


def test_cluster_equals_one_process_and_the_everything_command(inputs, tmp_path, checkpoint,
                                                               cluster, capsys):
    on_cluster = nsa.batch([inputs], tmp_path / "cluster", scheduler=cluster,
                           **model_options(checkpoint))
    alone = nsa.batch([inputs], tmp_path / "alone", scheduler="synchronous",
                      **model_options(checkpoint))
    assert [r.input for r in on_cluster.failed] == ["broken.tif"] == [r.input for r in alone.failed]
    assert "open:" in on_cluster.failed[0].error
    good = [i for i in sorted(os.listdir(inputs)) if i != "broken.tif"]
    assert main(["everything", *(str(inputs / i) for i in good), "-o", str(tmp_path / "cli"),
                 "-q", *cli_model(checkpoint)]) == 0
    for name, stem in (("cells.png", "cells"), ("field.tif", "field"), ("stack.npy", "stack")):
        batch_labels = labels_of(tmp_path / "cluster", stem)
        assert np.array_equal(batch_labels, labels_of(tmp_path / "alone", stem))
        expected = tifffile.imread(tmp_path / "cli" / f"{stem}_labels.tif")
        if batch_labels.ndim == 2:  # a 2D image: exactly what napari-segany everything writes
            assert batch_labels.dtype == expected.dtype and np.array_equal(batch_labels, expected)
        else:  # a stack: the same masks, ids made unique by the offsets of earlier planes
            offsets = np.cumsum([0, *(int(p.max()) for p in expected[:-1])])
            shifted = np.where(expected > 0, expected.astype(np.int64) + offsets[:, None, None], 0)
            assert np.array_equal(batch_labels, shifted)
    # a rerun computes nothing (and rewrites no marker)
    before = _markers(tmp_path / "cluster")
    again = nsa.batch([inputs], tmp_path / "cluster", scheduler=cluster, **model_options(checkpoint))
    assert again.computed == 0 and again.reused > 0 and _markers(tmp_path / "cluster") == before


def test_interrupted_run_resumes_to_the_identical_result(inputs, tmp_path, checkpoint, cluster):
    full = nsa.batch([inputs], tmp_path / "full", scheduler=cluster, **model_options(checkpoint))
    seen = []

    def stop_after_4(progress):
        seen.append(progress)
        return len(seen) <= 4  # the opening report, then 3 finished tasks

    with pytest.raises(Cancelled):
        nsa.batch([inputs], tmp_path / "cut", scheduler=cluster, callback=stop_after_4,
                  **model_options(checkpoint))
    resumed = nsa.batch([inputs], tmp_path / "cut", scheduler=cluster, **model_options(checkpoint))
    assert 0 < resumed.reused and resumed.computed < full.computed
    for stem in ("cells", "field", "stack"):
        assert np.array_equal(labels_of(tmp_path / "cut", stem), labels_of(tmp_path / "full", stem))
    assert (tmp_path / "cut" / "objects.csv").read_text() == \
        (tmp_path / "full" / "objects.csv").read_text().replace(str(tmp_path / "full"), "")


def test_command_line_on_the_cluster_reports_the_broken_file(inputs, tmp_path, checkpoint,
                                                             cluster, capsys):
    out = tmp_path / "out"
    code = main(["batch", "everything", str(inputs), "-o", str(out), "--scheduler", cluster,
                 *cli_model(checkpoint)])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.tif  failed" in err and "3 of 4 input(s) done" in err
    assert "dask dashboard: http" in err
    assert (out / "objects.csv").is_file() and (out / "stack.ome.zarr" / "labels").is_dir()
