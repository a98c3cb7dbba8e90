"""Batch tests: the tiny SAM registered (its spec travels to the workers with the tasks)."""
from __future__ import annotations

import pytest
from _everything import TINY_SAM

from napari_segany.models import registry


@pytest.fixture(autouse=True)
def tiny_registered(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM.name, TINY_SAM)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from _batch_data import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("weights"))
