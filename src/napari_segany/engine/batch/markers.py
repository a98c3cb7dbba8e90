"""Markers of finished work: small JSON files written atomically after the work is on disk.

A task writes its outputs (zarr chunks, which zarr itself writes atomically), then its
marker (temporary file + ``os.replace``): a marker present means the outputs are complete;
a task killed before its marker is redone from the start on the next run.  Markers live in
``OUT/.segany-batch/<stem>/`` beside the run's settings (``run.json``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import SegAnyError

STATE_DIR = ".segany-batch"
RUN_FILE = "run.json"
CANCEL_FILE = "cancel"


def write_marker(path: Path, data) -> None:
    """``data`` (JSON-able) at ``path``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_marker(path: Path):
    """The marker's data, or None when there is none (or it cannot be read: redo the task)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_run(state: Path, signature: dict, overwrite: bool) -> None:
    """Start or resume the run recorded in ``state``: a run with other settings is refused
    (unless ``overwrite``, which discards it); then the settings are recorded."""
    recorded = read_marker(state / RUN_FILE)
    if recorded is not None and recorded != json.loads(json.dumps(signature)) and not overwrite:
        changed = sorted(k for k in set(recorded) | set(signature)
                         if recorded.get(k) != json.loads(json.dumps(signature.get(k))))
        raise SegAnyError(f"{state.parent} holds a batch run with other settings (changed: "
                          f"{', '.join(changed)}): run the same command to resume it, pass "
                          "--overwrite (overwrite=True) to start again, or choose another output.")
    if overwrite and state.exists():
        shutil.rmtree(state)
        recorded = None
    if recorded is None or recorded != json.loads(json.dumps(signature)):
        write_marker(state / RUN_FILE, signature)
    (state / CANCEL_FILE).unlink(missing_ok=True)
