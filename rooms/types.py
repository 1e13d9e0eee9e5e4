"""The scalar types of the protocol, declared once: ids, texts, positions, levels, colours.

The bounds here are hard caps that protect the decoder; a room's own (smaller) limits
apply later, in the reducer.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

MAX_ID: Final = 64
MAX_TEXT: Final = 20_000
COLOR_PATTERN: Final = r"^#[0-9a-fA-F]{6}$"

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
Coordinate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Level = Annotated[int, msgspec.Meta(ge=0, le=10)]
Color = Annotated[str, msgspec.Meta(pattern=COLOR_PATTERN)]
