"""Do the metrics see style in the toy world? Real renders of a target vs fresh renders of
the same style, of its one-attribute neighbours, and of the other target."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nsync_bench.config.run_config import MetricsConfig
from nsync_bench.world import render as wr
from nsync_bench.world.targets import draw_split


def neighbours(style: wr.WorldStyle) -> list[wr.WorldStyle]:
    """Styles differing from ``style`` in exactly one attribute (base-training values only)."""
    values = {"palette": wr.PALETTES, "texture": wr.BASE_TEXTURES, "background": wr.BACKGROUNDS, "edge": wr.EDGES}
    out = []
    for attribute, options in values.items():
        for value in options:
            if value != getattr(style, attribute):
                out.append(wr.WorldStyle(**{**style.__dict__, attribute: value}))
    return out


def _save(images: list, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(images):
        files.append(folder / f"{i:05d}.png")
        image.save(files[-1], format="PNG")
    return files


def sanity_rows(target: str, n: int = 96, extractors: str = "toy-world") -> list[tuple[str, dict[str, float]]]:
    """(label, metrics) rows: the target's test split against each comparison set of ``n`` images."""
    import numpy as np

    from nsync_bench.metrics.scoring import score_image_sets

    config = MetricsConfig(extractors=extractors, device="cpu", batch_size=64)
    style = wr.target_style(target)
    other = next(name for name in wr.TARGETS if name != target)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        real = _save(draw_split(target, "test", n)[1], Path(tmp) / "real")
        sets = {f"{target} (fresh draw)": draw_split(target, "sanity", n)[1],
                f"{other} (other target)": draw_split(other, "sanity", n)[1]}
        rng = np.random.default_rng(0)
        for k, neighbour in enumerate(neighbours(style)):
            contents = wr.sample_contents(rng, n)
            pixels = wr.to_uint8(wr.render(contents, [neighbour] * n, seed=100 + k))
            from PIL import Image

            sets[f"{neighbour.slug} (one attribute off)"] = [Image.fromarray(p, "RGB") for p in pixels]
        for j, (label, images) in enumerate(sets.items()):
            files = _save(images, Path(tmp) / f"set{j}")
            report = score_image_sets(files, real, config)
            rows.append((label, {name: r.value for name, r in report.results.items()}))
    return rows


def sanity_markdown(target: str, n: int = 96, extractors: str = "toy-world") -> str:
    from nsync_bench.metrics.registry import metric_order, specs

    rows = sanity_rows(target, n, extractors)
    names = metric_order({name for _, values in rows for name in values})
    table = specs()
    headers = [f"{table[m].label} {'↓' if table[m].direction == 'lower' else '↑'}" for m in names]
    lines = [f"Real `{target}` test renders (n={n}) against ... ({extractors} extractors)", "",
             "| compared with | " + " | ".join(headers) + " |", "|---" * (len(names) + 1) + "|"]
    for label, m in rows:
        lines.append(f"| {label} | " + " | ".join(f"{m[name]:.4g}" for name in names) + " |")
    return "\n".join(lines) + "\n"
