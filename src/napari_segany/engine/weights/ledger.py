"""Trust on first download: the sha256 and size of weights whose authors publish no digest.

EfficientSAM, FastSAM-x, MobileSAMv2 and SAM 2.1 files come without a published sha256.  The
first time such a file arrives in the cache (downloaded, or put there by the user), its sha256
and size are written to ``hashes.json`` in the weights folder; every later use checks the file
against that record, so a file that changes afterwards (a truncated copy, a swapped file, a
different release under the same name) is refused instead of silently used.  ``napari-segany
download --hashes`` prints the records so that a user can compare them with a colleague's or
with a digest found elsewhere (``checkpoints.json`` of the project's notes lists third-party
ones where known).

The record of a file is checked once per (size, mtime): the stamp beside the file avoids
hashing gigabytes at every start.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CheckpointError

LEDGER_FILE = "hashes.json"
PUBLISHED, RECORDED, UNRECORDED = "published", "recorded", "unrecorded"


@dataclass(frozen=True)
class HashRecord:
    """What a weights file was when it first arrived."""

    sha256: str
    size: int
    recorded: str  # ISO date-time (UTC)
    source: str  # the URL it came from, or "found in the cache folder"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_ledger(folder: Path) -> dict[str, HashRecord]:
    """``{file name: HashRecord}`` of a weights folder (empty when there is none yet)."""
    path = Path(folder) / LEDGER_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"The hash records {path} are unreadable ({exc}); delete the file "
                              "to record the weights again at their next use.") from None
    return {name: HashRecord(**fields) for name, fields in raw.items()}


def record_file(path: Path, source: str) -> HashRecord:
    """Hash ``path`` and add it to the ledger of its folder (written atomically)."""
    path = Path(path)
    record = HashRecord(sha256_of(path), path.stat().st_size,
                        _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), source)
    ledger = read_ledger(path.parent)
    ledger[path.name] = record
    _write_ledger(path.parent, ledger)
    _stamp(path, record.sha256)
    return record


def verify_file(path: Path, expected_sha256: str, what: str) -> None:
    """Raise CheckpointError unless ``path`` has ``expected_sha256``; ``what`` says where the
    digest comes from ("the published sha256", "the sha256 recorded at its first download")."""
    path = Path(path)
    if _stamp_matches(path, expected_sha256):
        return
    if sha256_of(path) != expected_sha256:
        raise CheckpointError(
            f"{path} does not match {what} ({expected_sha256[:16]}...): it is corrupt, truncated "
            "or another file. Delete it; it will be downloaded again.")
    _stamp(path, expected_sha256)


def verify_or_record(path: Path, published: str | None, source: str) -> str:
    """Check ``path`` against the published digest, else against its record, else record it.
    Returns how the file is vouched for: PUBLISHED or RECORDED."""
    if published:
        verify_file(path, published, "the published sha256")
        return PUBLISHED
    record = read_ledger(path.parent).get(path.name)
    if record is None:
        record_file(path, source)
        return RECORDED
    if path.stat().st_size != record.size:
        raise CheckpointError(
            f"{path} has {path.stat().st_size} bytes, but {record.size} when it first arrived "
            f"({record.recorded}): it is truncated or another file. Delete it; it will be "
            "downloaded again.")
    verify_file(path, record.sha256, f"the sha256 recorded at its first download ({record.recorded})")
    return RECORDED


def _stamp_key(path: Path, sha256: str) -> str:
    stat = path.stat()
    return f"{sha256} {stat.st_size} {stat.st_mtime_ns}"


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _stamp_matches(path: Path, sha256: str) -> bool:
    stamp = _stamp_path(path)
    return stamp.is_file() and stamp.read_text() == _stamp_key(path, sha256)


def _stamp(path: Path, sha256: str) -> None:
    try:
        _stamp_path(path).write_text(_stamp_key(path, sha256))
    except OSError:  # a read-only cache still works; it just hashes again next time
        pass


def _write_ledger(folder: Path, ledger: dict[str, HashRecord]) -> None:
    text = json.dumps({name: asdict(r) for name, r in sorted(ledger.items())}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".hashes-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, Path(folder) / LEDGER_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
