"""The Segment Anything dock: prompts on an image, a live preview, commits into Labels,
propagation through z / t.  :class:`SegAnyWidget` composes its parts (see its module)."""
from .widget import SegAnyWidget

__all__ = ["SegAnyWidget"]
