"""docs/workflows.md cannot rot: its python blocks run (they need no model)."""
from __future__ import annotations

import re
from pathlib import Path

import napari_segany as nsa

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"


def test_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/workflows.md lost its example"
    namespace: dict = {"__name__": "docs_workflows"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/workflows.md python block {i + 1}", "exec"), namespace)


def test_named_functions_exist():
    for name in set(re.findall(r"`(\w+)\(", DOC.read_text())):
        if name[0].islower() and name in nsa.__all__:
            assert hasattr(nsa, name)
    for name in ("link_slices", "segment_volume", "track_labels", "merge_tracks", "split_track",
                 "set_parent", "write_ctc", "read_ctc", "object_features", "filter_objects",
                 "write_features_csv", "ImageSeries", "DivisionRule"):
        assert name in DOC.read_text() and hasattr(nsa, name)
