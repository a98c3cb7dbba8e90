"""Keyboard shortcuts of the widget: C commit, Shift+C discard, T toggle the sign of the next
points, N next mask candidate, Shift+S propagate the last committed object through z / t;
on the prompt layers only, Ctrl+Z removes the last prompt or undoes the last commit.

They are bound on the viewer and on the two prompt layers (the active layer's bindings win
over the viewer's in napari, and the Points layer is active while clicking).  The functions
hold the widget weakly: a closed widget leaves harmless no-ops behind.
"""
from __future__ import annotations

import weakref

SHORTCUTS = {
    "C": ("commit", "Commit the preview into the Labels layer"),
    "Shift-C": ("discard", "Discard the current object(s)"),
    "T": ("toggle_sign", "Toggle positive / negative for the next points"),
    "N": ("next_candidate", "Show the next mask candidate"),
    "Shift-S": ("propagate", "Propagate the last committed object through z / t"),
}
#: Bound on the prompt layers only: elsewhere Ctrl+Z keeps napari's meaning.
PROMPT_LAYER_SHORTCUTS = {
    "Control-Z": ("undo", "Remove the last prompt, or undo the last commit"),
}


#: What the mouse does on the prompt layers (listed with the keys in the dock).
MOUSE = (("Click", "Add a point (positive or negative, see T) on the Points layer"),
         ("Middle-click or Ctrl+click", "Add one negative point"),
         ("Drag (Shapes layer, rectangle)", "Draw a box around an object"))


def key_name(binding: str) -> str:
    """napari's binding ("Shift-C", "Control-Z") as the dock shows it ("Shift+C", "Ctrl+Z")."""
    return binding.replace("Control", "Ctrl").replace("-", "+")


def shortcuts_help() -> str:
    """Every key and mouse action of the dock, one per line (rich text)."""
    rows = [(key_name(key), doc) for key, (_, doc) in SHORTCUTS.items()]
    rows += [(f"{key_name(key)} (prompt layers)", doc)
             for key, (_, doc) in PROMPT_LAYER_SHORTCUTS.items()]
    rows += list(MOUSE)
    return "<br>".join(f"<b>{key}</b>: {doc}" for key, doc in rows)


def bind_shortcuts(widget, *providers, prompt_layers: bool = False) -> None:
    """Bind the shortcuts on each keymap provider (the viewer, layers)."""
    ref = weakref.ref(widget)
    shortcuts = {**SHORTCUTS, **(PROMPT_LAYER_SHORTCUTS if prompt_layers else {})}
    for key, (method, doc) in shortcuts.items():
        handler = _handler(ref, method, doc)
        for provider in providers:
            if provider is not None:
                provider.bind_key(key, handler, overwrite=True)


def unbind_shortcuts(widget, *providers) -> None:
    """Remove the shortcuts bound for ``widget`` (it is closed); a newer widget's stay."""
    for provider in providers:
        if provider is None:
            continue
        for binding, func in list(provider.keymap.items()):
            if getattr(func, "segany_widget", None) is not None and func.segany_widget() is widget:
                provider.bind_key(binding, None)


def _handler(ref, method, doc):
    def run(_provider=None):
        widget = ref()
        if widget is not None:
            getattr(widget, method)()

    run.__name__ = f"segany_{method}"
    run.__doc__ = doc
    run.segany_widget = ref  # which widget it drives (see unbind_shortcuts)
    return run
