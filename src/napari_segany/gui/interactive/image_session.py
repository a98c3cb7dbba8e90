"""Everything the Segment Anything dock keeps for one image layer, in one object.

An :class:`ImageSession` holds the image layer (and how it is read), its own prompt layers
(Points for clicks, Shapes for boxes), its preview layer, its target Labels layer (with the
undo history napari keeps for it), the SAM 2 memory of its last propagation (corrections),
the objects being segmented and the embedding they were
decoded with, the slice they belong to, and its status line.  Choosing another image switches
to that image's session: nothing of one image is ever applied to another.  The model and
the embedding cache are the dock's, shared by all sessions.
"""
from __future__ import annotations

from typing import Callable

from ...engine.interactive import InteractiveSession, ObjectMask
from ..shared.image_slice import ImageSource
from ..shared.labels_io import LabelsWriter
from .large_slices import TiledSlice
from .own_layers import LayerNames, keep_above
from .preview_layer import PreviewLayer
from .prompt_layers import PromptLayers


class ImageSession:
    """The state of one image layer in the Segment Anything dock (see the module docstring)."""

    def __init__(self, viewer, source: ImageSource, names: LayerNames,
                 on_prompts_changed: Callable[["ImageSession"], None]):
        self.viewer = viewer
        self.source = source
        self.names = names
        self.shape = source.spatial_shape  # when attached: another shape is another session
        self.prompts = PromptLayers(viewer, lambda: on_prompts_changed(self), names)
        self.preview = PreviewLayer(viewer, names.preview)
        self.writer = LabelsWriter()
        self.plain: InteractiveSession | None = None  # the objects, with the model's predictor
        self.tiled: TiledSlice | None = None  # a large slice: its tiles' predictor and objects
        self.index: tuple | None = None  # the slice the objects belong to
        self.embedding_key = None  # the embedding the objects were decoded with
        self.left_out = (0, 0, 0)  # prompts of the shown slice ignored (and said so)
        self.memory = None  # the SAM 2 memory of its last propagation (memory_run.Memory)
        self.status = ""

    # ---------------------------------------------------------------- what it holds
    @property
    def layer(self):
        return self.source.layer

    @property
    def objects(self) -> InteractiveSession | None:
        """The session of the objects in use: the tiled slice's, or the plain one."""
        return self.tiled.session if self.tiled is not None else self.plain

    @property
    def masks(self) -> list[ObjectMask]:
        return [] if self.objects is None else self.objects.masks

    def own_layers(self) -> list:
        """Its prompt and preview layers (None where not made yet)."""
        return [self.preview.layer, self.prompts.boxes, self.prompts.points]

    def layers_alive(self) -> bool:
        return self.prompts.alive() and self.preview.alive()

    def owns(self, layer) -> bool:
        return any(own is not None and layer == own for own in self.own_layers())

    # ---------------------------------------------------------------- changes
    def make_layers(self, taken) -> None:
        """Create (or adopt, see :mod:`.own_layers`) its prompt and preview layers."""
        self.prompts.attach(self.source, taken)
        self.preview.attach(self.source, taken)
        self.preview.show(self.masks)

    def keep_layers_above_image(self) -> None:
        """Its Labels, preview and prompt layers directly above the image, prompts on top."""
        keep_above(self.viewer, self.layer, [self.writer.layer, *self.own_layers()])

    def use_predictor(self, predictor, refine: bool) -> None:
        """A model was loaded: a new (empty) set of objects decoded by ``predictor``."""
        self.plain = InteractiveSession(predictor, refine_with_mask=refine)
        self.tiled = None
        self.embedding_key = None

    def set_refine(self, refine: bool) -> None:
        for session in (self.plain, self.tiled.session if self.tiled else None):
            if session is not None:
                session.refine_with_mask = refine

    def forget_objects(self) -> None:
        """The objects are cleared (their prompts stay): decoded again when needed."""
        for session in (self.plain, self.tiled.session if self.tiled else None):
            if session is not None:
                session.clear()

    def close(self) -> None:
        """Stop listening to its layers (the dock closes or the image is gone); they stay."""
        self.prompts.detach()
        self.writer.attach(None)
        if self.memory is not None:
            self.memory.close()  # its features, memories and spilled files
            self.memory = None
