"""The style registry: one manifest per style in ``datasets/<style>.toml`` (datasets/README.md), torch-free.

What a style *is* (its name, source, initializer token, splits, human name, renderer) is config: resolving a
run (``config/recipes.py``) and checking a claims file need it; a style's files on disk are ``data/styles.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from nsync_bench.compat import tomllib
from nsync_bench.errors import unknown_name
from nsync_bench.paths import shipped_dir


@dataclass(frozen=True)
class StyleInfo:
    name: str
    description: str
    source: str  # "procedural", "archive" or "local"
    initializer_token: str
    train_split: str = "train"
    test_split: str = "test"
    license: str = ""
    # Archive styles: where to download from and what to expect (None: unknown until the first
    # verified fetch, which records and prints them for pinning).
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    # (our split, folder inside the archive) pairs, e.g. (("train", "monet2photo/trainA"), ...).
    archive_splits: tuple[tuple[str, str], ...] = ()
    layout: str = ""  # local styles: the folder layout `data import` expects, for humans
    # Procedural styles rendered by a plugin (``style_renderers`` in a package's plugins.toml, e.g. "toy-world").
    renderer: str = ""
    # The style's human name ("Claude Monet"): what the untrained base model (method ldm) is told.
    display_name: str = ""

    @property
    def splits(self) -> tuple[str, str]:
        return (self.train_split, self.test_split)


@cache
def _manifests() -> dict[str, StyleInfo]:
    styles = {}
    for path in sorted(shipped_dir("datasets").glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        info = StyleInfo(
            name=data["name"],
            description=data.get("description", ""),
            source=data["source"],
            initializer_token=data["initializer_token"],
            train_split=data.get("train_split", "train"),
            test_split=data.get("test_split", "test"),
            license=data.get("license", ""),
            url=data.get("url") or None,
            sha256=(data.get("sha256") or "").lower() or None,  # TOML has no null: "" means unknown
            size=data.get("size") or None,
            archive_splits=tuple((str(k), str(v)) for k, v in data.get("archive_splits", {}).items()),
            layout=data.get("layout", "").strip(),
            display_name=data.get("display_name") or data["name"],
            renderer=data.get("renderer", ""),
        )
        styles[info.name] = info
    return styles


def style_names() -> list[str]:
    return sorted(_manifests())


def get_style(name: str) -> StyleInfo:
    styles = _manifests()
    if name not in styles:
        raise unknown_name("style", name, styles, "List them with `nsync-bench data list`.")
    return styles[name]
