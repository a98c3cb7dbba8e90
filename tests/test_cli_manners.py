"""The command line behaves in pipes and scripts: no traceback when the reader leaves,
aligned tables, JSON for scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from napari_segany.cli import main
from napari_segany.cli.models_cmd import format_table


def _run_with_closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI with a stdout pipe whose reader is already gone (``| head`` that quit)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "napari_segany", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


def test_models_into_a_closed_pipe_ends_quietly():
    done = _run_with_closed_stdout("models")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_models_table_columns_line_up(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:-1]  # between "cache folder" and "auto"
    header = lines[0]
    for column in ("task", "weights", "license", "description"):
        start = header.index(column)
        for line in lines[1:]:  # every row has a cell starting at the header's column
            assert line[start - 2:start] == "  " and line[start] != " ", (column, line)


def test_format_table_pads_to_the_widest_cell():
    rows = [["a", "bb", "end"], ["cccc", "d", "x"]]
    assert format_table(rows) == ["a     bb  end", "cccc  d   x"]


def test_models_json_for_scripts(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path))
    assert main(["models", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in document["models"]]
    assert "mobile_sam" in names and "sam_vit_b" in names
    row = document["models"][names.index("mobile_sam")]
    assert row["weights"] == "missing" and row["license"] == "Apache-2.0"
    assert row["file"].startswith(str(tmp_path))
