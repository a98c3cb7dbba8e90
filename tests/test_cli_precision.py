"""``--precision`` on every command that loads a model: it reaches the loaded encoder
(``precision_of``), keys the embedding store apart, is part of a batch's settings, and a
value the commands cannot take is refused with a reason."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from _everything import TINY_SAM, cells_image

from napari_segany.cli import main
from napari_segany.cli.loading import PRECISIONS
from napari_segany.engine import precision as engine_precision
from napari_segany.engine import weights
from napari_segany.engine.batch import BatchSettings
from napari_segany.engine.batch import workers
from napari_segany.engine.batch.workers import worker_models
from napari_segany.engine.embeddings import store_entries
from napari_segany.models import registry
from napari_segany.models.precision import precision_of

GRID = ["--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-thresh", "0"]


@pytest.fixture(autouse=True)
def tiny_registered(monkeypatch, tmp_path, one_thread):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM.name, TINY_SAM)


@pytest.fixture
def loaded(monkeypatch) -> list:
    """Every model the commands load, in order."""
    models, real = [], weights.load_model

    def spy(*args, **kwargs):
        models.append(real(*args, **kwargs))
        return models[-1]

    monkeypatch.setattr(weights, "load_model", spy)
    return models


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.clip(cells_image(), 0, 255).astype(np.uint8))
    return path


def model_args(tiny_file, *extra):
    return ["--model", "tiny_sam", "--checkpoint", str(tiny_file), "--device", "cpu", "-q", *extra]


def test_the_literal_choices_are_the_engines():
    assert set(PRECISIONS) == set(engine_precision.REQUESTS)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_everything_loads_the_chosen_precision(image, tmp_path, tiny_file, loaded, precision):
    out = tmp_path / "labels.tif"
    assert main(["everything", str(image), "-o", str(out), *model_args(tiny_file),
                 *GRID, "--precision", precision]) == 0
    assert [precision_of(m) for m in loaded] == [precision] and out.is_file()


def test_auto_follows_the_hardware_and_the_default_the_environment(image, tmp_path, tiny_file,
                                                                    loaded, monkeypatch):
    out = tmp_path / "labels.tif"
    monkeypatch.setattr(engine_precision, "cpu_has_fast_bf16", lambda: True)  # an AMX CPU
    assert main(["everything", str(image), "-o", str(out), *model_args(tiny_file), *GRID,
                 "--precision", "auto", "--overwrite"]) == 0
    monkeypatch.setenv("NAPARI_SEGANY_PRECISION", "fp32")  # no --precision: the variable
    assert main(["everything", str(image), "-o", str(out), *model_args(tiny_file), *GRID,
                 "--overwrite"]) == 0
    assert [precision_of(m) for m in loaded] == ["bf16", "fp32"]


def test_embed_keys_the_store_apart_per_precision(image, tmp_path, tiny_file, loaded, capsys):
    store = tmp_path / "store"
    for precision in ("fp32", "bf16", "bf16"):
        assert main(["embed", str(image), *model_args(tiny_file, "--out", str(store)),
                     "--precision", precision]) == 0
    err = capsys.readouterr().err
    assert err.count("1 embedding(s) computed, 0 reused") == 2  # bf16 did not reuse fp32's
    assert "1 embedding(s) already in the store: skipped" in err  # the second bf16 run did
    assert [precision_of(m) for m in loaded] == ["fp32", "bf16", "bf16"]
    identities = sorted({entry.model for entry in store_entries(store)})
    assert len(identities) == 2 and "|bf16|" in identities[0] + identities[1]
    assert main(["store", "--store", str(store)]) == 0  # its size per model and precision
    names = [line.strip().split("  ")[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["tiny_sam", "tiny_sam bf16", "total"]


def test_invalid_precision_is_refused_with_the_choices(image, tmp_path, tiny_file, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["embed", str(image), *model_args(tiny_file), "--precision", "fp16"])
    assert stop.value.code == 2
    assert "--precision: invalid choice: 'fp16' (choose from" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["embed", "everything", "batch"])
def test_invalid_environment_default_names_the_variable(image, tmp_path, tiny_file, capsys,
                                                        monkeypatch, loaded, command):
    monkeypatch.setenv("NAPARI_SEGANY_PRECISION", "half")
    argv = {"embed": ["embed", str(image)],
            "everything": ["everything", str(image), "-o", str(tmp_path / "l.tif")],
            "batch": ["batch", "everything", str(image), "-o", str(tmp_path / "b")]}[command]
    with pytest.raises(SystemExit) as stop:
        main([*argv, *model_args(tiny_file)])
    assert stop.value.code == 2 and not loaded
    assert "$NAPARI_SEGANY_PRECISION must be one of fp32, bf16, auto; got 'half'" in \
        capsys.readouterr().err


def test_batch_workers_load_the_runs_precision(tmp_path, tiny_file, monkeypatch):
    monkeypatch.setattr(workers, "_MODELS", {})  # nothing loaded by another test
    settings = BatchSettings("embed", model="tiny_sam", checkpoint=tiny_file, device="cpu",
                             precision="auto")
    monkeypatch.setattr(engine_precision, "cpu_has_fast_bf16", lambda: True)
    ref = settings.check().model_ref()  # auto resolved where the run starts
    assert ref.precision == "bf16" and settings.signature()["precision"] == "bf16"
    model, _ = worker_models(ref)  # what a worker process loads
    assert precision_of(model) == "bf16"
    monkeypatch.setattr(engine_precision, "cpu_has_fast_bf16", lambda: False)
    assert settings.model_ref().precision == "fp32"
    assert "precision" not in settings.signature()  # fp32 runs keep their recorded settings
    with pytest.raises(ValueError, match="precision must be one of"):
        BatchSettings("embed", model="tiny_sam", precision="fp16").check()


def test_batch_with_another_precision_is_not_resumed(image, tmp_path, tiny_file, capsys, loaded):
    out = tmp_path / "out"
    args = ["batch", "embed", str(image), "-o", str(out), "--scheduler", "synchronous",
            *model_args(tiny_file)]
    assert main([*args, "--precision", "fp32"]) == 0
    assert main([*args, "--precision", "bf16"]) == 2
    assert "other settings (changed: precision)" in capsys.readouterr().err
    assert main([*args, "--precision", "bf16", "--overwrite"]) == 0
    assert precision_of(loaded[0]) == "fp32" and precision_of(loaded[-1]) == "bf16"
    identities = {entry.model for entry in store_entries(out / "embeddings")}
    assert any("|bf16|" in identity for identity in identities)


def test_models_says_what_auto_is_here(capsys, monkeypatch):
    monkeypatch.setattr(engine_precision, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(weights, "default_device", lambda: torch.device("cpu"))
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "--precision auto: bf16 on this machine (cpu;")
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auto_precision"] == {"device": "cpu",
                                                                   "precision": "bf16"}
