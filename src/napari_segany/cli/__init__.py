"""``napari-segany`` command line (on the engine; no Qt).

Subcommands register themselves in :data:`COMMANDS` (one module each).

Exit status: 0 done; 1 ``batch``: some inputs failed (listed in its closing table); 2 a user error (bad arguments, files, weights; or some inputs skipped,
said on stderr); 130 interrupted (Ctrl+C: finished outputs are kept, none is half-written);
141 the reader of the output went away (``napari-segany models | head``), as for SIGPIPE.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from ..engine.errors import SegAnyError
from . import batch_cmd, embed_cmd, everything_cmd, models_cmd, store_cmd

COMMANDS = [models_cmd, everything_cmd, embed_cmd, batch_cmd, store_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-segany",
        description="Segment Anything family for microscopy: models, everything mode, embeddings.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    try:
        with warnings.catch_warnings():  # restores Python's warning display afterwards
            warnings.showwarning = _show_warning
            code = int(args.run(args) or 0)
            sys.stdout.flush()  # a reader that left shows here, not in Python's exit flush
            return code
    except (SegAnyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """The pipe's reader left (``| head``): point stdout at /dev/null so that Python's flush at
    exit does not raise a second BrokenPipeError (the recipe of Python's signal docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a corrupt store entry being recomputed) as one line, without the source
    line Python would print."""
    print(f"warning: {message}", file=file or sys.stderr)


if __name__ == "__main__":  # python -m napari_segany.cli
    sys.exit(main())
