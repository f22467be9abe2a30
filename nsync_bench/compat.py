"""Standard-library modules newer than the oldest supported Python (3.10), with their backports."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli is the same parser under its pre-3.11 name (a dependency there)
    import tomli as tomllib

__all__ = ["tomllib"]
