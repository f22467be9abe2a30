"""Progress reporting without a UI dependency in library code.

Library loops (training, generation, feature extraction, downloads) report through a
:class:`Progress`; the CLI passes one that draws Rich progress bars, library users get
:class:`NullProgress` or their own.
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def start(self, description: str, total: int, completed: int = 0) -> None: ...

    def advance(self, steps: int = 1, **fields: Any) -> None: ...

    def stop(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def start(self, description: str, total: int, completed: int = 0) -> None:
        pass

    def advance(self, steps: int = 1, **fields: Any) -> None:
        pass

    def stop(self) -> None:
        pass
