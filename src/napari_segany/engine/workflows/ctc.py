"""Tracks in the Cell Tracking Challenge (CTC) format, for scoring with the CTC measures.

The format (Ulman et al., Nat. Methods 2017; the challenge's "naming and file content
conventions"), as this module writes and checks it:

* one 16-bit TIFF label image per frame, frames numbered from 0 with three digits
  (``man_track000.tif``; four when there are more than 1000 frames): ``man_track`` for
  reference tracks (``TRA`` folders), ``mask`` for results (``RES`` folders);
* a text file, ``man_track.txt`` (or ``res_track.txt``), one line per track: ``L B E P``,
  four integers separated by spaces: the track's label L (> 0, unique), its first and last
  frames B and E, and its parent's label P (0: none);
* a track is present on every frame from B to E (no gap: a gap is written as a new track
  whose parent is the track before the gap), on no other frame, and a parent ends before its
  daughters begin (E of P < B of L).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import SegAnyError
from .overlap import plane_objects
from .tracks import TrackingResult, frame_tracks, sort_tracks

KINDS = {"man": ("man_track", "man_track.txt"), "res": ("mask", "res_track.txt")}
MAX_ID = np.iinfo(np.uint16).max


def write_ctc(result: TrackingResult, folder, kind: str = "man") -> Path:
    """Write ``result`` in the CTC format into ``folder`` (created if needed).

    ``kind="man"``: ``man_track.txt`` + ``man_trackTTT.tif`` (a reference, e.g. corrected
    tracks); ``"res"``: ``res_track.txt`` + ``maskTTT.tif`` (a result to score against one).
    Tracks with gaps are written as several CTC tracks linked parent to child (new labels
    above the largest id).  Raises SegAnyError for ids above 65,535 or a parent that does
    not end before its daughter starts.  Returns the text file's path.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'man' or 'res', not {kind!r}.")
    prefix, text_name = KINDS[kind]
    lineage, renames = _without_gaps(result)
    problems = lineage_problems(lineage)
    if problems:
        raise SegAnyError("Cannot write CTC tracks: " + "; ".join(problems[:3]))
    if len(lineage) and lineage[:, 0].max() > MAX_ID:
        raise SegAnyError(f"CTC masks are 16-bit: track ids must be <= {MAX_ID}, the largest "
                          f"is {lineage[:, 0].max()}.")
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    n_frames = result.labels.shape[0]
    for t in range(n_frames):
        _write_mask(folder / frame_name(prefix, t, n_frames), result.labels[t], renames.get(t, {}))
    path = folder / text_name
    np.savetxt(path, lineage, fmt="%d", delimiter=" ")
    return path


def frame_name(prefix: str, t: int, n_frames: int) -> str:
    return f"{prefix}{t:0{4 if n_frames > 1000 else 3}d}.tif"


def _write_mask(path: Path, plane: np.ndarray, rename: dict) -> None:
    import tifffile

    plane = np.asarray(plane)
    if rename:
        plane = plane.copy()
        for old, new in rename.items():
            plane[plane == old] = new
    tifffile.imwrite(path, plane.astype(np.uint16), photometric="minisblack")


def _without_gaps(result: TrackingResult) -> tuple[np.ndarray, dict]:
    """CTC lineage rows with every gap cut into a new child track; ``renames``: {t: {old: new}}."""
    rows, renames, last_part = [], {}, {}
    next_id = int(result.tracks[:, 0].max()) + 1 if len(result.tracks) else 1
    for track_id in result.track_ids:
        frames = result.frames(track_id)
        parts = np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1)
        parent, label = 0, int(track_id)
        for k, part in enumerate(parts):
            if k:
                parent, label, next_id = label, next_id, next_id + 1
                for t in part:
                    renames.setdefault(int(t), {})[int(track_id)] = label
            rows.append([label, part[0], part[-1], parent])
        last_part[int(track_id)] = label
    lineage = np.asarray(rows, np.int64).reshape(-1, 4)
    for i, row in enumerate(lineage):
        graph_parent = result.graph.get(int(row[0]), [0])[0] if row[3] == 0 else 0
        if graph_parent:
            lineage[i, 3] = last_part.get(int(graph_parent), graph_parent)
    return lineage, renames


def lineage_problems(lineage: np.ndarray) -> list[str]:
    """What breaks the CTC rules in ``L B E P`` rows (labels, parents, frame order)."""
    problems = []
    labels = lineage[:, 0]
    if len(labels) and labels.min() < 1:
        problems.append("track labels must be positive")
    if len(np.unique(labels)) != len(labels):
        problems.append("a track label appears on two lines")
    ends = {int(L): int(E) for L, _, E, _ in lineage}
    for L, B, E, P in lineage:
        if B > E:
            problems.append(f"track {L} ends (frame {E}) before it begins ({B})")
        if P and P not in ends:
            problems.append(f"track {L} has parent {P}, which is not a track")
        elif P and ends[int(P)] >= B:
            problems.append(f"track {L} begins on frame {B} but its parent {P} ends on frame "
                            f"{ends[int(P)]}: a parent must end before its daughters begin")
    return problems


def mask_problems(lineage: np.ndarray, labels: np.ndarray) -> list[str]:
    """Where the masks and the ``L B E P`` rows disagree: on each frame the labels present
    must be exactly the tracks spanning it."""
    problems = []
    for t in range(labels.shape[0]):
        present = set(np.unique(np.asarray(labels[t]))) - {0}
        spanning = {int(L) for L, B, E, _ in lineage if B <= t <= E}
        if present != spanning:
            missing, extra = sorted(spanning - present), sorted(present - spanning)
            problems.append(f"frame {t}: tracks {missing} have no mask, labels {extra} no line"
                            if missing and extra else f"frame {t}: tracks {missing} have no mask"
                            if missing else f"frame {t}: labels {extra} are in no track line")
    return problems


def read_ctc(folder) -> TrackingResult:
    """Read CTC tracks from ``folder``: ``man_track.txt`` + ``man_trackTTT.tif`` (or
    ``res_track.txt`` + ``maskTTT.tif``).  Raises SegAnyError, saying what is wrong, when the
    files are missing or break the format's rules."""
    folder = Path(folder).expanduser()
    prefix, text = _find_kind(folder)
    lineage = _read_lineage(text)
    labels = _read_masks(folder, prefix)
    problems = lineage_problems(lineage) + mask_problems(lineage, labels)
    if problems:
        raise SegAnyError(f"{folder} is not valid CTC tracking data: " + "; ".join(problems[:3]))
    graph = {int(L): [int(P)] for L, _, _, P in lineage if P}
    width = labels.shape[2]
    rows = [_frame_rows(labels[t], t, width) for t in range(labels.shape[0])]
    tracks = np.concatenate(rows) if rows else np.zeros((0, 4))
    return TrackingResult(labels, sort_tracks(tracks), graph)


def _find_kind(folder: Path) -> tuple[str, Path]:
    for prefix, text_name in KINDS.values():
        if (folder / text_name).is_file():
            return prefix, folder / text_name
    raise SegAnyError(f"No man_track.txt or res_track.txt in {folder}: choose the TRA (reference) "
                      "or RES (result) folder of a CTC sequence.")


def _read_lineage(path: Path) -> np.ndarray:
    try:
        lineage = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise SegAnyError(f"{path.name}: every line must be four integers L B E P ({exc}).") from None
    if lineage.size == 0:
        return np.zeros((0, 4), np.int64)
    if lineage.shape[1] != 4:
        raise SegAnyError(f"{path.name}: every line must be four integers L B E P, found "
                          f"{lineage.shape[1]} columns.")
    return lineage


def _read_masks(folder: Path, prefix: str) -> np.ndarray:
    import tifffile

    pattern = re.compile(rf"^{prefix}(\d+)\.tiff?$")
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.match(p.name))}
    if not found:
        raise SegAnyError(f"No {prefix}TTT.tif mask in {folder}.")
    if sorted(found) != list(range(len(found))):
        missing = sorted(set(range(max(found) + 1)) - set(found))
        raise SegAnyError(f"{prefix} masks must be numbered from 0 without holes: frame(s) "
                          f"{missing[:5]} missing in {folder}.")
    return np.stack([tifffile.imread(found[t]) for t in range(len(found))]).astype(np.int32)


def _frame_rows(plane: np.ndarray, t: int, width: int) -> np.ndarray:
    objects = plane_objects(plane)
    return frame_tracks(objects.index, objects.ids, t, width)
