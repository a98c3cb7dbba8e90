"""The npe2 manifest: one content, shipped as real files (a symlink breaks on Windows)."""
from __future__ import annotations

from pathlib import Path

import pytest

from _paths import REPO

PACKAGE_MANIFEST = REPO / "src" / "napari_segany" / "napari.yaml"


def test_package_manifest_is_a_real_file_equal_to_the_root_one():
    root = REPO / "napari.yaml"
    if not root.exists():
        pytest.skip("not a source checkout")
    assert not PACKAGE_MANIFEST.is_symlink() and not root.is_symlink()
    assert PACKAGE_MANIFEST.read_bytes() == root.read_bytes(), (
        "napari.yaml at the repository root and src/napari_segany/napari.yaml differ: edit the "
        "package one and copy it to the root (cp src/napari_segany/napari.yaml napari.yaml)")


def test_no_symlinks_in_what_the_sdist_ships():
    shipped = [REPO / name for name in ("src", "tests", "docs", "benchmarks")]
    links = [p for top in shipped if top.exists() for p in top.rglob("*") if p.is_symlink()]
    assert not links, f"symlinks break sdists on Windows: {links}"


def test_manifest_python_names_resolve():
    import importlib

    import yaml

    manifest = yaml.safe_load(PACKAGE_MANIFEST.read_text())
    for command in manifest["contributions"]["commands"]:
        module, _, attr = command["python_name"].partition(":")
        assert hasattr(importlib.import_module(module), attr), command["python_name"]


def test_tox_napari_env_opens_the_demo_without_test_dependencies():
    import configparser

    tox = configparser.ConfigParser()
    tox.read(REPO / "tox.ini")
    env = tox["testenv:napari"]
    assert "testing" not in env.get("extras", "") and "testing" not in tox["testenv"].get("extras", "")
    assert "napari_segany.gui.demo" in env["commands"]
