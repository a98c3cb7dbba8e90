"""Looking inside a checkpoint file without unpickling it.

These helpers read a torch zip archive statically (its member names, the globals its pickle
names, the string constants of its pickle), so that an error can say what a refused or
unreadable file is.  They never raise: a file they cannot read gives an empty answer.
``source`` is a path or a binary file object, rewound before each read.
"""
from __future__ import annotations

import io
import pickletools
import re
import zipfile

import torch

from .ultralytics_reader import MAX_PICKLE_BYTES


def rewind(source) -> None:
    """Seek a file object back to its start (the loaders share it); paths need nothing."""
    if hasattr(source, "seek"):
        source.seek(0)


def plain_zip_members(source) -> list[str] | None:
    """Members of an ordinary zip archive (not a torch checkpoint), else None."""
    try:
        rewind(source)
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
    except Exception:
        return None
    return None if any(n.endswith("data.pkl") for n in names) else names  # torch.save's pickle


def unsafe_globals(source, exc: BaseException | None = None) -> list[str]:
    """The pickle globals of a checkpoint that a weights-only load refuses (read statically,
    nothing is unpickled); for a legacy (non-zip) file, the one named by ``exc``."""
    try:
        rewind(source)
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc or ""))
        return sorted(set(found))


def pickle_strings(source, limit: int = 4096) -> set[str]:
    """String constants of a torch zip checkpoint's pickle (disassembled, never unpickled)."""
    try:
        data = _pickle_bytes(source)
        if not data:
            return set()
        found = set()
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                found.add(arg)
                if len(found) >= limit:
                    break
        return found
    except Exception:
        return set()


def _pickle_bytes(source) -> bytes:
    """The ``data.pkl`` member of a torch zip archive; empty when it is too large to be an
    official file (the same limit as the ultralytics reader)."""
    rewind(source)
    with zipfile.ZipFile(source) as archive:
        member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        if archive.getinfo(member).file_size > MAX_PICKLE_BYTES:
            return b""
        return archive.read(member)
