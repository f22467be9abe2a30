"""The toy world's positive control: does learning a style token beat naming the style?

For each seed, on one target style:

* ``untrained``: the base model prompted "{caption} in the style of {display name}" (the name is
  a word the base model never saw in a caption: what an untrained user would type): the ``ldm``
  method's run of the benchmark;
* ``ti``: a Textual Inversion run of the benchmark (``nsync-bench run``'s code path, toy profile);
* ``floor``: a fresh draw of real renders of the style (the best any method can do).

Every arm is scored against the style's real test split with the profile's metrics, paired by
seed, and TI vs untrained is tested with paired t-tests, Holm-adjusted over the metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nsync_bench import paths
from nsync_bench.config.run_config import RunConfig
from nsync_bench.progress import NullProgress, Progress

logger = logging.getLogger(__name__)

ARMS = ("untrained", "ti", "floor")


@dataclass
class ControlResult:
    style: str
    seeds: list[int]
    overrides: list[str]
    # arm -> metric -> one value per seed
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # "ti vs untrained" / "floor vs ti" -> metric -> statistics
    comparisons: dict[str, dict[str, dict[str, float | str]]] = field(default_factory=dict)
    seconds: float = 0.0
    # arm -> folder of the first seed's images (for the grid)
    image_dirs: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        metrics = list(next(iter(self.values.values())))
        lines = [f"Style `{self.style}`, seeds {self.seeds}, overrides {self.overrides or 'none'}:", "",
                 "| arm | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for arm, per_metric in self.values.items():
            cells = [f"{np.mean(v):.4g} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.2g}" for v in per_metric.values()]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        for pair, verdicts in self.comparisons.items():
            lines += ["", f"**{pair}** (positive difference = first is better; paired t over seeds, Holm over "
                      "metrics):", "", "| metric | mean diff | d_z | p | Holm p | verdict |",
                      "|---|---|---|---|---|---|"]
            for metric, c in verdicts.items():
                lines.append(f"| {metric} | {c['mean_diff']:.4g} | {c['d_z']:.2f} | {c['p_t']:.2g} | "
                             f"{c['p_holm']:.2g} | {c['verdict']} |")
        return "\n".join(lines) + "\n"


def _score(files: list[Path], real: list[Path], config: RunConfig) -> dict[str, float]:
    from nsync_bench.metrics.scoring import score_image_sets

    report = score_image_sets(files, real, config.metrics, cache_root=paths.cache_dir() / "features")
    return {name: r.value for name, r in report.results.items()}


def _run_scores(metrics: dict[str, float]) -> dict[str, float]:
    """A run's metric values by metric name (its ``metrics/<name>`` entries, without the ``_std``)."""
    return {k.removeprefix("metrics/"): v for k, v in metrics.items()
            if k.startswith("metrics/") and not k.endswith("_std")}


def _floor_arm(config: RunConfig, style: str, style_dir: Path, out_dir: Path, seed: int) -> dict[str, float]:
    from nsync_bench.data.styles import get_style, list_images
    from nsync_bench.world.targets import draw_split

    test = list_images(style_dir, get_style(style).test_split)
    count = config.eval.max_prompts or len(test)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(draw_split(style, f"floor-{seed}", min(count, len(test)))[1]):
        files.append(out_dir / f"{i:05d}.png")
        image.save(files[-1], format="PNG")
    return _score(files, [t.path for t in test], config)


def compare(values: dict[str, dict[str, list[float]]], first: str, second: str,
            alpha: float = 0.05) -> dict[str, dict[str, float | str]]:
    from nsync_bench.metrics.registry import METRICS
    from nsync_bench.stats.paired import holm_bonferroni, paired_comparison, verdict

    out: dict[str, dict[str, float | str]] = {}
    for metric in values[first]:
        c = paired_comparison(values[first][metric], values[second][metric], direction=METRICS[metric][1])
        out[metric] = {"mean_diff": c.mean_diff, "d_z": c.d_z, "p_t": c.p_t, "ci_low": c.ci_low, "ci_high": c.ci_high}
    adjusted = holm_bonferroni([out[m]["p_t"] for m in out])
    for m, p in zip(out, adjusted, strict=True):
        out[m]["p_holm"] = float(p)
        out[m]["verdict"] = verdict(float(out[m]["mean_diff"]), float(p), alpha)
    return out


def positive_control(style: str = "world-dusk", seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
                     overrides: list[str] | None = None, work_dir: Path | None = None,
                     data_root: Path | None = None, progress: Progress | None = None) -> ControlResult:
    """Run the three arms for every seed and compare them (see the module docstring)."""
    import time

    from nsync_bench.config.recipes import resolve_config
    from nsync_bench.data.styles import ensure_style_data
    from nsync_bench.pipeline.runner import RunOptions, run

    progress = progress or NullProgress()
    overrides = list(overrides or [])
    work_dir = Path(work_dir or paths.runs_dir(None) / "world-control")
    style_dir = ensure_style_data(style, paths.data_root(data_root))
    result = ControlResult(style, list(seeds), overrides, {arm: {} for arm in ARMS})
    start = time.monotonic()
    for seed in seeds:
        config = resolve_config(style=style, method="ti", seed=seed, profile="toy", overrides=overrides)
        arm_dir = work_dir / style
        options = RunOptions(runs_dir=work_dir / "runs", data_root=data_root, track=False, progress=progress)
        # The untrained arm is the `ldm` method's run: a run like any other, so it is computed once per
        # (seed, prompt set, settings) and reused by its run key, like the TI run.
        untrained = run(style=style, method="ldm", seed=seed, profile="toy", overrides=overrides, options=options)
        ti = run(style=style, method="ti", seed=seed, profile="toy", overrides=overrides, options=options)
        arms = {
            "untrained": _run_scores(untrained.metrics),
            "ti": _run_scores(ti.metrics),
            "floor": _floor_arm(config, style, style_dir, arm_dir / "floor" / f"seed{seed}", seed),
        }
        if not result.image_dirs:
            result.image_dirs = {"untrained": str(untrained.run_dir / "eval" / "images"),
                                 "ti": str(ti.run_dir / "eval" / "images"),
                                 "real (test)": str(style_dir / "test")}
        for arm, scores in arms.items():
            logger.info("%s seed %d %s: %s", style, seed, arm, {k: round(v, 4) for k, v in scores.items()})
            for metric, value in scores.items():
                result.values[arm].setdefault(metric, []).append(float(value))
    result.comparisons["ti vs untrained"] = compare(result.values, "ti", "untrained")
    result.comparisons["floor vs ti"] = compare(result.values, "floor", "ti")
    result.comparisons["floor vs untrained"] = compare(result.values, "floor", "untrained")
    result.seconds = time.monotonic() - start
    return result


def write_result(result: ControlResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "control.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    (out_dir / "control.md").write_text(result.markdown())
    write_grid(result, out_dir / "grid.png")


def write_grid(result: ControlResult, path: Path, count: int = 12) -> None:
    """One row per arm (untrained, TI, real test images): the first seed's first ``count`` images.

    Generated image i and real image i share the caption (image i's prompt is test caption i).
    """
    from PIL import Image

    from nsync_bench.world.grids import tile

    rows = []
    for folder in result.image_dirs.values():
        files = sorted(Path(folder).glob("*.png"))[:count]
        rows.append([np.asarray(Image.open(f).convert("RGB").resize((32, 32))) for f in files])
    tile(rows, scale=3).save(path)
