"""The whole suite on a small machine: ``python tests/run_suite.py [pytest arguments]``.

Two phases, so that the run takes both cores without holding two large models at once:

1. the ``heavy`` modules (tests/_suite.py, ``HEAVY``: ViT-L, SAM 2's video, the parity
   runs of the large encoders) in one process with two torch threads;
2. every other module on two pytest-xdist workers of one torch thread each, a module per
   worker at a time (``--dist loadfile``: module fixtures are made once).

``NAPARI_SEGANY_TEST_WORKERS`` sets the number of workers of phase 2 (default 2; 0 runs the
whole suite in one plain pytest process).  Arguments go to both phases; a phase that selects
no test is not an error.  The exit code is pytest's: the first failing phase's.
"""
from __future__ import annotations

import os
import subprocess
import sys

NO_TESTS_COLLECTED = 5  # pytest.ExitCode.NO_TESTS_COLLECTED


def phases(workers: int) -> list[list[str]]:
    if workers <= 0:
        return [[]]
    return [["-m", "heavy"],
            ["-m", "not heavy", "-n", str(workers), "--dist", "loadfile"]]


def main(args: list[str]) -> int:
    workers = int(os.environ.get("NAPARI_SEGANY_TEST_WORKERS", "2"))
    codes = []
    for selection in phases(workers):
        code = subprocess.call([sys.executable, "-m", "pytest", *selection, *args])
        if code not in (0, NO_TESTS_COLLECTED):
            return code
        codes.append(code)
    return 0 if 0 in codes else NO_TESTS_COLLECTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
