"""Where the shipped manifests and recipes live.

``datasets/`` and ``baselines/`` sit at the repository's top level (DESIGN.md layout). A wheel
carries copies under ``nsync_bench/_shipped/``; a source checkout or editable install reads the
top-level folders directly.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """Return the folder ``datasets`` or ``baselines``, wherever this install keeps it."""
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the shipped folder {name!r} next to the package ({_PACKAGE_DIR}); "
        "reinstall nsync-bench (pip install -e . from a checkout, or the wheel)."
    )
