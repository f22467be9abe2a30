"""Image grids: for a few evaluation prompts, the real image and every method's image side by side.

Under the shared-seed contract, evaluation image *i* of every method with run seed *s* starts
from the same initial latent and the same test caption, so a row of the grid differs only by
method. The grid uses one seed per (profile, protocol, style): the smallest seed all methods
finished. Real images come from ``<data_root>/<style>/<test split>/<source>`` when this machine
has them (a report may be built far from the data); otherwise a labelled grey placeholder.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nsync_bench.report.artifacts import evaluation_image, load_manifest
from nsync_bench.report.plots import method_order
from nsync_bench.report.runs_table import ReportData

log = logging.getLogger(__name__)

GROUP = ["profile", "protocol", "style"]
PLACEHOLDER = (200, 200, 200)
TEXT = (20, 20, 20)
PAD = 6
CAPTION_HEIGHT = 18
HEADER_HEIGHT = 22


@dataclass(frozen=True)
class ImageGrid:
    profile: str
    protocol: str
    style: str
    seed: int
    methods: tuple[str, ...]
    prompts: tuple[str, ...]
    png: bytes
    missing_real: int = 0
    missing_generated: int = 0

    @property
    def name(self) -> str:
        """A file stem that is safe on every file system."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"grid-{self.style}-{self.profile}-{self.protocol}")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:  # Pillow >= 10.1 ships a scalable default font: no font files needed
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """``text`` truncated with an ellipsis so it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def placeholder(cell: int, label: str) -> Image.Image:
    """A grey tile with ``label`` wrapped over several lines."""
    tile = Image.new("RGB", (cell, cell), PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    font = _font(max(9, cell // 11))
    lines: list[str] = []
    for word in label.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= cell - 8:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    line_height = font.size + 3 if isinstance(font, ImageFont.FreeTypeFont) else 12
    y = (cell - line_height * len(lines)) // 2
    for line in lines:
        draw.text(((cell - draw.textlength(line, font=font)) / 2, y), line, fill=(70, 70, 70), font=font)
        y += line_height
    return tile


def _tile(path: Path | None, cell: int, missing: str) -> Image.Image:
    if path is None or not path.is_file():
        return placeholder(cell, missing)
    with Image.open(path) as image:
        # Smoke images are 32 px: nearest keeps their pixels honest instead of blurring them.
        resample = Image.Resampling.NEAREST if image.width < cell else Image.Resampling.LANCZOS
        return image.convert("RGB").resize((cell, cell), resample=resample)


def _test_split(style: str) -> str:
    from nsync_bench.data.styles import get_style
    from nsync_bench.errors import NsyncBenchError

    try:
        return get_style(style).test_split
    except NsyncBenchError:  # a style this checkout does not know: assume the usual layout
        return "test"


def compose(columns: list[str], rows: list[tuple[str, list[Image.Image]]], cell: int) -> bytes:
    """Header with column names, then per row a caption line and its tiles; PNG bytes."""
    width = PAD + len(columns) * (cell + PAD)
    height = HEADER_HEIGHT + len(rows) * (CAPTION_HEIGHT + cell + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    header_font, caption_font = _font(14), _font(11)
    for j, name in enumerate(columns):
        label = _fit(draw, name, cell, header_font)
        x = PAD + j * (cell + PAD) + (cell - draw.textlength(label, font=header_font)) / 2
        draw.text((x, 4), label, fill=TEXT, font=header_font)
    y = HEADER_HEIGHT
    for caption, tiles in rows:
        draw.text((PAD, y + 3), _fit(draw, caption, width - 2 * PAD, caption_font), fill=TEXT, font=caption_font)
        y += CAPTION_HEIGHT
        for j, tile in enumerate(tiles):
            canvas.paste(tile, (PAD + j * (cell + PAD), y))
        y += cell + PAD
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def build_grids(data: ReportData, dest: Path, data_root: Path | None, *, prompts: int = 4,
                cell: int = 128) -> tuple[list[ImageGrid], list[str]]:
    """One grid per (profile, protocol, style) and the warnings met while building them."""
    grids: list[ImageGrid] = []
    warnings: list[str] = []
    for key, group in data.runs.groupby(GROUP):
        profile, protocol, style = map(str, key)
        methods = method_order(group["method"].unique())
        seed_sets = [set(group.loc[group["method"] == m, "seed"]) for m in methods]
        common = set.intersection(*seed_sets) if seed_sets else set()
        if not common:
            warnings.append(f"no image grid for {style} ({profile}/{protocol}): no seed common to all methods.")
            continue
        seed = min(common)
        manifests = {}
        for method in methods:
            run_id = group.loc[(group["method"] == method) & (group["seed"] == seed), "run_id"].iloc[0]
            manifests[method] = (run_id, {int(e["index"]): e for e in load_manifest(data, run_id, dest)})
        reference = next((entries for _, entries in manifests.values() if entries), {})
        if not reference:
            warnings.append(f"no image grid for {style} ({profile}/{protocol}): the runs of seed {seed} logged no "
                            "evaluation manifest (eval/manifest.jsonl).")
            continue
        real_dir = data_root / style / _test_split(style) if data_root is not None else None
        rows, captions, missing_real, missing_generated = [], [], 0, 0
        for index in sorted(reference)[:prompts]:
            entry = reference[index]
            real_path = real_dir / entry["source"] if real_dir is not None and entry.get("source") else None
            if real_path is None or not real_path.is_file():
                missing_real += 1
            tiles = [_tile(real_path, cell, "real image not available here")]
            for method in methods:
                run_id, entries = manifests[method]
                path = evaluation_image(data, run_id, entries[index]["file"], dest) if index in entries else None
                if path is None:
                    missing_generated += 1
                tiles.append(_tile(path, cell, "image missing"))
            caption = str(entry.get("caption") or entry.get("prompt") or "")
            captions.append(caption)
            rows.append((f"#{index} (image seed {entry.get('seed', '?')}): {caption}", tiles))
        if missing_generated:
            warnings.append(f"{missing_generated} generated image(s) missing from the {style} grid "
                            f"({profile}/{protocol}, seed {seed}).")
        png = compose(["real", *methods], rows, cell)
        grids.append(ImageGrid(profile, protocol, style, int(seed), tuple(methods), tuple(captions), png,
                               missing_real, missing_generated))
        log.debug("image grid for %s/%s/%s: seed %s, %d prompts", profile, protocol, style, seed, len(rows))
    return grids, warnings
