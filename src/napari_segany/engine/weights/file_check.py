"""Is this file the weights of the model it was chosen for?  Told fast, before any load.

:func:`check_checkpoint` reads a chosen file without unpickling anything and without building
a network (tensor shapes only, on the meta device), and says in plain words what is wrong:

* not a PyTorch checkpoint at all (a text file renamed ``.pt``, an image...);
* a truncated or damaged download ("download it again");
* another registered model's weights: which one, and where to choose it (e.g. MobileSAMv2's
  object-aware detector given as FastSAM-s);
* an ultralytics or training pickle that names Python objects (:mod:`.refusals`).

Files it cannot tell (a legacy pickle, weights of no registered model) pass: the loader's own
strict checks explain those.  A FastSAM-s file given as FastSAM-x passes too: the loader
builds the network the file describes.  A check costs tens of milliseconds once the
registry's architectures are known on the meta device (:func:`prepare`, about a second,
once per process).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ...models.registry import DETECTOR, INSTANCE, REGISTRY, ModelSpec, get_spec
from ..errors import CheckpointError
from .file_inspection import unsafe_globals
from .identify import matching_models, models_with_signature, prepare_architectures
from .refusals import BENIGN_GLOBALS, refusal_message, zip_message

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_2 = 0x80  # torch's legacy (non-zip) files start with this opcode


@dataclass(frozen=True)
class FileVerdict:
    """What :func:`check_checkpoint` found: ``problem`` ("" when the file may be loaded as
    ``model``) and ``holds`` (registered models whose weights the file holds, if told)."""

    model: str
    path: Path
    problem: str = ""
    holds: tuple[str, ...] = field(default_factory=tuple)

    @property
    def refused(self) -> bool:
        return bool(self.problem)


class RefusedFile(CheckpointError):
    """A chosen weights file refused by :func:`check_checkpoint` (``verdict`` says why)."""

    def __init__(self, verdict: FileVerdict):
        super().__init__(verdict.problem)
        self.verdict = verdict


def refuse_wrong_file(model: str, path, where: Callable[[ModelSpec], str] | None = None) -> None:
    """Raise :class:`RefusedFile` when ``path`` is not ``model``'s weights (checked fast,
    before a load builds anything)."""
    verdict = check_checkpoint(model, path, where or default_where)
    if verdict.refused:
        raise RefusedFile(verdict)


def default_where(spec: ModelSpec) -> str:
    return f"choose {spec.name}"


def check_checkpoint(model: str, path, where: Callable[[ModelSpec], str] = default_where
                     ) -> FileVerdict:
    """The verdict on ``path`` chosen as the weights of registry model ``model``.

    ``where(spec)`` says where the model a file belongs to is chosen (the GUI names its
    fields; the default: "choose <name>").  Never raises for a bad file: that is the verdict.
    """
    spec, path = get_spec(model), Path(path).expanduser()
    problem = _file_problem(path)
    if problem:
        return FileVerdict(model, path, problem)
    if not _is_zip(path):
        return FileVerdict(model, path)  # a legacy torch file: the loader reads it
    try:
        holds = _zip_holds(path, spec)
    except _Refusal as refusal:
        return FileVerdict(model, path, str(refusal))
    if not holds or spec.name in holds or _same_kind(spec, holds):
        return FileVerdict(model, path, "", tuple(holds))
    return FileVerdict(model, path, _wrong_model(path, spec, REGISTRY[holds[0]], where),
                       tuple(holds))


def prepare() -> None:
    """Learn the registry's architectures (meta device, no memory) ahead of the first check."""
    prepare_architectures()


class _Refusal(Exception):
    """The file is refused; the message says why."""


def _file_problem(path: Path) -> str:
    """What is wrong with the file as bytes: missing, empty, not a torch file, truncated."""
    if not path.is_file():
        return f"{path} was not found (no such file): choose the weights file again."
    if path.stat().st_size == 0:
        return f"{path} is empty: the file is truncated (download it again)."
    with path.open("rb") as fh:
        head = fh.read(4)
    if head != ZIP_MAGIC and head[:1] != bytes([PICKLE_PROTOCOL_2]):
        return (f"{path} is not a PyTorch checkpoint ({_what_bytes(head)}): choose the "
                "model's weights file (.pt or .pth).")
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return (f"{path}: the file is truncated (download it again); it ends before "
                    "the end of its archive.")
    return ""


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == ZIP_MAGIC


def _what_bytes(head: bytes) -> str:
    try:
        head.decode("utf-8")
        return "it holds text"
    except UnicodeDecodeError:
        return "its bytes are no torch archive"


def _zip_holds(path: Path, spec: ModelSpec) -> list[str]:
    """Registered models whose weights the zip file holds (shapes only); _Refusal for a
    pickle that names Python objects, or an ordinary zip archive."""
    with zipfile.ZipFile(path) as archive:
        members = archive.namelist()
    if not any(m.endswith("data.pkl") for m in members):
        raise _Refusal(zip_message(path, members))
    refused = [g for g in unsafe_globals(path) if g not in BENIGN_GLOBALS]
    if any(g.startswith("ultralytics.") for g in refused):
        return _ultralytics_holds(path)
    if refused:
        raise _Refusal(refusal_message(path, path, refused))
    try:
        obj = torch.load(path, map_location="meta", weights_only=True)
    except Exception:  # damaged records: the loader's reader words it
        return []
    return matching_models(obj)


def _ultralytics_holds(path: Path) -> list[str]:
    from .ultralytics_reader import read_ultralytics_checkpoint

    try:
        _, config = read_ultralytics_checkpoint(path, shapes_only=True)
    except Exception:
        return []
    return models_with_signature(config)


def _same_kind(spec: ModelSpec, holds: list[str]) -> bool:
    """Another size of the same family and task (FastSAM-s as FastSAM-x): the loader builds
    what the file describes."""
    found = REGISTRY[holds[0]]
    return found.family == spec.family and found.task == spec.task


def _wrong_model(path: Path, spec: ModelSpec, found: ModelSpec, where) -> str:
    return (f"{path} is {_what_it_is(found)}, not {spec.title} ({spec.file_name}): "
            f"{where(found)}.")


def _what_it_is(spec: ModelSpec) -> str:
    if spec.task == DETECTOR:
        return "MobileSAMv2's object-aware detector (ObjectAwareModel.pt)"
    if spec.task == INSTANCE:
        return f"a FastSAM network ({spec.title} weights)"
    return f"{spec.title} weights ({spec.name})"
