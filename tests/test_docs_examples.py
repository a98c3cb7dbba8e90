"""docs/api.md cannot rot: its Python blocks run, its command lines parse.

Every ```python block runs in order in one namespace, except those right after a
``<!-- not run ... -->`` comment.  ``load_model`` is replaced by a stand-in that builds small
networks through the real loader: a tiny SAM (random weights) for every promptable name, a
YOLOv8-n with random weights in each ultralytics model's layout (FastSAM: prototypes; the
MobileSAMv2 detector: reg_max 26, no prototypes).  Nothing is downloaded; results are noise,
the calls and the shapes are real.  Every ``napari-segany`` line of the ```bash blocks must
name a real command and only options that command has.
"""
from __future__ import annotations

import dataclasses
import re
import shlex
import time
from pathlib import Path

import pytest
import torch

import napari_segany as nsa
from napari_segany.engine import weights
from napari_segany.models.registry import INSTANCE, PROMPTABLE, ModelSpec, get_spec

from _everything import TINY_SAM, random_state_dict
from _sam2_tiny import TINY_SAM2

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
_BLOCK = re.compile(r"(<!--[^\n]*-->\s*\n)?```(\w+)\n(.*?)```", re.S)


def _blocks(language: str) -> list[str]:
    text = DOC.read_text()
    return [code for comment, lang, code in _BLOCK.findall(text)
            if lang == language and "not run" not in (comment or "")]


@pytest.fixture(scope="module")
def stand_in_loader():
    real = weights.load_model
    made: dict[str, torch.nn.Module] = {}

    def load_model(name, checkpoint=None, device=None, precision="fp32"):
        spec = name if isinstance(name, ModelSpec) else get_spec(name)
        key = (spec.name, precision)
        if key not in made:
            if spec.task == PROMPTABLE:
                stand_in = TINY_SAM2 if spec.family == "sam2" else TINY_SAM
                tiny = dataclasses.replace(stand_in, name=spec.name, description=spec.description,
                                           license=spec.license)
                made[key] = real(tiny, checkpoint=random_state_dict(tiny), device="cpu",
                                 precision=precision)
            else:
                from napari_segany.models.yolo.build import build_yolov8

                torch.manual_seed(0)
                fastsam = spec.task == INSTANCE
                net = build_yolov8(scale="n", reg_max=16 if fastsam else 26, has_proto=fastsam)
                made[key] = real(spec, checkpoint=net.state_dict(), device="cpu", precision=precision)
        return made[key]

    return load_model


@pytest.fixture
def docs_session(stand_in_loader, monkeypatch, tmp_path):
    # nsa first: its lazy attribute resolves through engine.weights, and monkeypatch restores
    # what it read first (the real loader, not a stand-in left behind for later tests)
    monkeypatch.setattr(nsa, "load_model", stand_in_loader)
    monkeypatch.setattr(weights, "load_model", stand_in_loader)
    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def test_python_blocks_run(docs_session):
    blocks = _blocks("python")
    assert len(blocks) >= 10, "docs/api.md lost its examples"
    namespace: dict = {"__name__": "docs_api"}
    for i, code in enumerate(blocks):
        start = time.perf_counter()
        try:
            exec(compile(code, f"docs/api.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"block {i + 1} failed:\n{code}") from exc
        print(f"block {i + 1}: {time.perf_counter() - start:.2f} s")
    assert namespace["masks"].dtype == bool and namespace["labels"].any()


def test_every_documented_top_level_name_exists():
    text = DOC.read_text()
    documented = set(re.findall(r"\bnsa\.(\w+)", text))
    table = set(re.findall(r"`(\w+)`", text.split("## Models and weights")[0]))
    for name in documented | (table & set(nsa.__all__)):
        assert hasattr(nsa, name), name
    assert set(nsa.__all__) - {"__version__"} <= table, "a top-level name is missing from the table"


def _subparsers():
    from napari_segany.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, action.choices


def test_command_lines_parse():
    parser, commands = _subparsers()
    lines = [line.split("#")[0].strip() for block in _blocks("bash") for line in block.splitlines()]
    lines = [line for line in lines if line.startswith("napari-segany ")]
    assert {shlex.split(line)[1] for line in lines} == set(commands), "document every command"
    for line in lines:
        tokens = shlex.split(line)[1:]
        known = {s for a in commands[tokens[0]]._actions for s in a.option_strings}
        unknown = [t for t in tokens if t.startswith("-") and t.split("=")[0] not in known]
        assert not unknown, f"{line}: {unknown} not in `napari-segany {tokens[0]} --help`"
        if tokens[0] in ("models", "download"):  # the others would run on files
            assert parser.parse_args(tokens).command == tokens[0]
    assert "usage: napari-segany" in parser.format_help()


def test_options_named_in_the_text_exist():
    _, commands = _subparsers()
    text = DOC.read_text().split("## Command line")[1]
    for command, options in re.findall(r"- `(\w+)[^`]*`: (.*)", text):
        known = {s for a in commands[command]._actions for s in a.option_strings}
        for option in re.findall(r"`(--?[\w-]+)", options):
            assert option in known, f"{command}: {option}"
