"""tests/run_suite.py: the README's test command runs the heavy modules alone, then the rest
on pytest-xdist workers; a phase without tests is not an error, a failure is."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture
def run_suite():
    spec = importlib.util.spec_from_file_location("run_suite", Path(__file__).with_name(
        "run_suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calls(monkeypatch, run_suite, codes):
    calls = []

    def call(command):
        calls.append(command)
        return codes[len(calls) - 1]

    monkeypatch.setattr(run_suite.subprocess, "call", call)
    return calls


def test_heavy_modules_first_then_the_rest_on_two_workers(monkeypatch, run_suite):
    monkeypatch.delenv("NAPARI_SEGANY_TEST_WORKERS", raising=False)
    calls = _calls(monkeypatch, run_suite, [0, 0])
    assert run_suite.main(["-q"]) == 0
    assert [c[3:] for c in calls] == [["-m", "heavy", "-q"],
                                      ["-m", "not heavy", "-n", "2", "--dist", "loadfile", "-q"]]


def test_a_phase_without_tests_is_fine_a_failure_stops(monkeypatch, run_suite):
    calls = _calls(monkeypatch, run_suite, [5, 0])
    assert run_suite.main(["tests/gui"]) == 0  # no heavy module under tests/gui
    calls = _calls(monkeypatch, run_suite, [1, 0])
    assert run_suite.main([]) == 1 and len(calls) == 1
    _calls(monkeypatch, run_suite, [5, 5])
    assert run_suite.main(["-k", "nothing"]) == 5


def test_zero_workers_runs_one_plain_pytest(monkeypatch, run_suite):
    monkeypatch.setenv("NAPARI_SEGANY_TEST_WORKERS", "0")
    calls = _calls(monkeypatch, run_suite, [0])
    assert run_suite.main(["-x"]) == 0
    assert calls[0][3:] == ["-x"]


def test_every_heavy_module_exists():
    from _suite import HEAVY

    root = Path(__file__).parent.parent
    assert all((root / path).is_file() for path in HEAVY)
