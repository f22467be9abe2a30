"""The toy world's positive control: does learning a style token beat naming the style?

For each seed, on one target style:

* ``untrained``: the base model prompted "{caption} in the style of {display name}" (the name is
  a word the base model never saw in a caption: what an untrained user would type): the ``ldm``
  method's run of the benchmark;
* ``ti``: a Textual Inversion run of the benchmark (``nsync-bench run``'s code path, toy profile);
* ``floor``: a fresh draw of real renders of the style (the best any method can do).

Every arm is scored against the style's real test split with the profile's metrics, paired by
seed, and judged as the report judges claims: by the declared rule, families and smallest effects of
the toy world's claims file (``baselines/claims/toy-control.toml``: each comparison a family of the
four metrics; the paired t-test and the exact sign-flip permutation test; "supported (t only)" where
only the t-test is below alpha).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nsync_bench import paths
from nsync_bench.config.run_config import RunConfig
from nsync_bench.io import atomic_write_text
from nsync_bench.progress import NullProgress, Progress
from nsync_bench.report.claims import ClaimsFile, load_claims
from nsync_bench.stats.rule import rule_text

logger = logging.getLogger(__name__)

ARMS = ("untrained", "ti", "floor")
CLAIMS = "toy-control"  # baselines/claims/toy-control.toml
PAIRS = (("ti", "untrained"), ("floor", "ti"), ("floor", "untrained"))


@dataclass
class ControlResult:
    style: str
    seeds: list[int]
    overrides: list[str]
    # arm -> metric -> one value per seed
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # "ti vs untrained" / "floor vs ti" -> metric -> statistics
    comparisons: dict[str, dict[str, dict[str, float | str]]] = field(default_factory=dict)
    rule: str = ""  # the claims file's verdict rule, as the report prints it
    notes: list[str] = field(default_factory=list)  # e.g. "5 seeds cannot reach 0.05 with an exact test ..."
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
        lines += ["", f"Rule (baselines/claims/{CLAIMS}.toml): {self.rule}", *(f"- {note}" for note in self.notes)]
        for pair, verdicts in self.comparisons.items():
            lines += ["", f"**{pair}** (positive difference = first is better; Holm within the pair's family of "
                      "metrics):", "", "| metric | mean diff | d_z | p t | Holm p t | p exact | Holm p exact "
                      "| better in | verdict |", "|---|---|---|---|---|---|---|---|---|"]
            for metric, c in verdicts.items():
                lines.append(f"| {metric} | {c['mean_diff']:.4g} | {c['d_z']:.2f} | {c['p_t']:.2g} | "
                             f"{c['p_holm']:.2g} | {c['p_perm']:.2g} | {c['p_perm_holm']:.2g} | "
                             f"{c['wins']}/{c['n']} | {c['verdict']} |")
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


def _tidy(values: dict[str, dict[str, list[float]]], style: str) -> list[dict[str, object]]:
    """The arms' per-seed values as the report's tidy rows (one per arm, metric and seed position)."""
    from nsync_bench.metrics.registry import directions

    direction = directions()
    return [{"profile": "toy", "protocol": "control", "style": style, "metric": metric,
             "direction": direction[metric], "method": arm, "seed": i, "value": float(v)}
            for arm, per_metric in values.items() for metric, seeds in per_metric.items() for i, v in enumerate(seeds)]


def compare(values: dict[str, dict[str, list[float]]], first: str, second: str, style: str = "world-dusk",
            claims: ClaimsFile | None = None) -> tuple[dict[str, dict[str, float | str]], list[str]]:
    """``first`` vs ``second`` per metric, judged by the toy control's claims file, and the file's notes
    (an exact test that cannot reach alpha at this many seeds)."""
    import pandas as pd

    from nsync_bench.report.analysis import compare as compare_runs
    from nsync_bench.report.claims_check import check_claims
    from nsync_bench.report.families import family_table

    claims = claims or load_claims(CLAIMS)
    results = pd.DataFrame(_tidy({first: values[first], second: values[second]}, style))
    comparisons = compare_runs(results, [(first, second)], claims)
    alpha = claims.rule.alpha
    verdicts = check_claims(comparisons, claims, alpha, results).set_index(["candidate", "baseline", "metric"])
    out: dict[str, dict[str, float | str]] = {}
    for _, c in comparisons.iterrows():
        key = (first, second, c["metric"])
        verdict = str(verdicts.loc[key, "verdict"]) if key in verdicts.index else "exploratory"
        out[str(c["metric"])] = {
            "mean_diff": c["mean_diff"], "d_z": c["d_z"], "p_t": c["p_t"], "p_holm": c["p_t_adj"],
            "p_perm": c["p_perm"], "p_perm_holm": c["p_perm_adj"], "p_wilcoxon": c["p_wilcoxon"],
            "ci_low": c["ci_low"], "ci_high": c["ci_high"], "wins": int(c["wins"]), "n": int(c["n"]),
            "prob_improvement": c["prob_improvement"], "pi_low": c["pi_low"], "pi_high": c["pi_high"],
            "verdict": verdict}
    notes = [f"{first} vs {second}: {note}" for note in family_table(comparisons, claims, alpha)["note"] if note]
    return out, notes


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
    claims = load_claims(CLAIMS)
    result.rule = rule_text(claims.rule.test, claims.rule.alpha, claims.rule.declared)
    for first, second in PAIRS:
        result.comparisons[f"{first} vs {second}"], notes = compare(result.values, first, second, style, claims)
        result.notes += notes
    result.seconds = time.monotonic() - start
    return result


def write_result(result: ControlResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "control.json", json.dumps(asdict(result), indent=2) + "\n")
    atomic_write_text(out_dir / "control.md", result.markdown())
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
