"""The Segment Everything dock: every object of a slice (or a stack) into Labels, with live
filters.  :class:`EverythingWidget` composes its parts (see its module)."""
from .widget import EverythingWidget

__all__ = ["EverythingWidget"]
