"""Why a checkpoint file could not be loaded, in user terms: what the file is, what to do.

A weights-only load refuses files that pickle Python objects; the messages here tell an
ultralytics pickle, a micro-sam / torch_em training checkpoint and a whole pickled network
apart (all read statically, nothing is executed), and name the model to choose when the
file holds a registered model's weights.  Damaged files and ordinary zip archives get their
own messages.
"""
from __future__ import annotations

import re
from pathlib import Path

from .file_inspection import pickle_strings, plain_zip_members
from .identify import ultralytics_models

#: Pickle globals a weights-only load may resolve beyond torch's defaults: numpy number
#: scalars and their dtypes, which training loops leave in checkpoints (a metric, a best
#: score).  They only rebuild numbers.  A file naming anything else is refused, and its
#: message names the other globals as the culprits.
BENIGN_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype")
_ULTRALYTICS_CHOICES = "fastsam_s, fastsam_x or mobilesamv2_objectaware"
_NETWORK_PACKAGES = ("segment_anything", "mobile_sam", "efficient_sam", "torch.nn.modules")
_TRAINING_PACKAGES = ("micro_sam", "torch_em")
EFFICIENT_SAM_RELEASES = {"efficient_sam_vits.pt", "efficient_sam_vitt.pt"}


def refusal_message(source, name, refused: list[str], exc: BaseException | None = None) -> str:
    """Why a weights-only load refused a file, in user terms: what the file is, what to do."""
    shown = [g for g in refused if g not in BENIGN_GLOBALS] or refused  # name the culprits
    named = ", ".join(shown[:4]) + (", ..." if len(shown) > 4 else "")
    if any(g.startswith("ultralytics.") for g in refused):
        return _ultralytics_refusal(source, name, refused)
    if any(g.split(".")[0] in _TRAINING_PACKAGES for g in refused) or "model_state" in pickle_strings(source):
        return _training_refusal(name, named)
    if any(g.startswith(_NETWORK_PACKAGES) for g in refused):
        return _network_refusal(name, named)
    if not refused:
        return _unknown_content_refusal(name, exc)
    return (
        f"Refused to load {name}: it contains pickled Python objects other than tensors and "
        f"plain containers ({named}), which are unsafe to unpickle: they could run code. "
        "Nothing was executed. Use the official checkpoint file for this model."
    )


def unreadable_message(source, name, exc: BaseException) -> str:
    """Why torch could not read a file at all: an ordinary zip archive, or damaged bytes."""
    archive = plain_zip_members(source)
    if archive is not None:
        return zip_message(name, archive)
    return (
        f"Could not read {name}: the file is truncated or corrupt, e.g. an incomplete "
        f"download ({_first_line(exc)}). Delete it and download it again."
    )


def zip_message(name, members: list[str]) -> str:
    """An ordinary zip archive given as a checkpoint: the EfficientSAM release, or extract it."""
    released = sorted({Path(m).name for m in members} & EFFICIENT_SAM_RELEASES)
    if released:
        model = released[0].removesuffix(".pt")
        return (f"{name} is a zip archive holding {released[0]} (the EfficientSAM release), not "
                f"a state dict: choose {model}, which reads the archive as it is.")
    shown = ", ".join(members[:5]) + (", ..." if len(members) > 5 else "")
    return (f"{name} is a zip archive ({shown}), not a PyTorch checkpoint: extract the weight "
            "file and give that instead.")


def _ultralytics_refusal(source, name, refused: list[str]) -> str:
    # only a path can be re-read by the restricted unpickler, which tells FastSAM-s from -x
    found = ultralytics_models(source) if isinstance(source, (str, Path)) else ""
    choose = f" {found}" if found else f" Choose {_ULTRALYTICS_CHOICES}."
    return (
        f"Refused to load {name} as a state dict: it is an ultralytics checkpoint (FastSAM or "
        f"the MobileSAMv2 detector), a pickled network object ({_pick(refused, 'ultralytics.')}"
        f"). Nothing was executed.{choose}"
    )


def _training_refusal(name, named: str) -> str:
    return (
        f"Refused to load {name}: it is a training checkpoint (micro-sam / torch_em layout) "
        f"that also stores Python objects ({named}), which are unsafe to unpickle: they "
        "could run code. Nothing was executed. Export its SAM weights as a plain state dict "
        "with micro-sam (micro_sam.util.export_custom_sam_model(checkpoint, 'vit_b', "
        "'exported.pth'), in micro-sam's environment) and load that file."
    )


def _network_refusal(name, named: str) -> str:
    return (
        f"Refused to load {name}: it is a whole pickled network object ({named}), not a "
        "state dict; unpickling it is unsafe (it could run code). Nothing was executed. "
        "Save the weights with torch.save(model.state_dict(), path) in the code that made "
        "it, or use the official checkpoint file."
    )


def _unknown_content_refusal(name, exc: BaseException | None) -> str:
    # torch named no global (e.g. an unsupported opcode): quote its reason instead
    return (
        f"Refused to load {name}: it contains pickled data other than tensors and plain "
        f"containers, which is unsafe to unpickle ({_unpickler_reason(exc)}). Nothing was "
        "executed. Use the official checkpoint file for this model."
    )


def _pick(names: list[str], prefix: str) -> str:
    """The most telling global under ``prefix``: the network class (``nn.tasks``) if named."""
    preferred = [n for n in names if n.startswith(prefix + "nn.tasks")] or [
        n for n in names if n.startswith(prefix)]
    return preferred[0]


def _unpickler_reason(exc: BaseException | None) -> str:
    """The WeightsUnpickler line of torch's message, without its advice to allowlist or to
    turn weights-only loading off, and without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc or ""))
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    line = match.group(1) if match else _first_line(exc) if exc else "unknown content"
    if not line.strip():  # the reason may follow on the next non-empty line
        rest = text[match.end():].strip().splitlines() if match else []
        line = rest[0] if rest else "unknown content"
    return re.split(r"\. Please use|, but got", line)[0].strip().rstrip(".")


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return text[0] if text else type(exc).__name__
