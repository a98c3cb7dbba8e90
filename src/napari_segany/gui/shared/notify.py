"""The docks' notifications, in one place (napari's notification manager shows them).

Every message a dock gives the user goes through :func:`info`, :func:`warning` or
:func:`error`, never ``print``; tests collect them by patching the three ``show_*`` names
of this module.
"""
from __future__ import annotations

from napari.utils.notifications import show_error, show_info, show_warning


def info(message: str) -> None:
    show_info(message)


def warning(message: str) -> None:
    show_warning(message)


def error(message: str) -> None:
    show_error(message)


def by_level(level: str, message: str) -> None:
    """``level``: "info", "warning" or "error"."""
    {"info": info, "warning": warning, "error": error}[level](message)
