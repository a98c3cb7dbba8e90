"""Where the shared parity data live (``../shared`` beside the repository, or $NAPARI_SEGANY_SHARED)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NAPARI_SEGANY_SHARED", REPO.parent / "shared"))
PARITY = SHARED / "parity"
