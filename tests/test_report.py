"""The report from a test MLflow store with known numbers: tables, p-values, Holm, verdicts, files.

Runs are written directly with ``MlflowClient`` (no training), so every expected number can be
computed here by hand or with scipy, independently of nsync_bench.stats.paired.
"""

import io
import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from PIL import Image
from scipy import stats as sps
from typer.testing import CliRunner

from nsync_bench.paths import artifact_root
from nsync_bench.report.build import ReportError, build_report, default_out_dir
from nsync_bench.report.interpretation import fmt, fmt_p
from nsync_bench.report.render import redact
from nsync_bench.tracking import schema

STYLE = "toy-pastel"
SEEDS = [0, 1, 2, 3, 4]
DIRECTIONS = {"fid": "lower", "kid": "lower", "cmmd": "lower", "csd": "higher"}
# Run text with characters HTML and Markdown would interpret: the report must escape it.
IMPLEMENTATIONS = {m: f"{m}|test-extractor<v1>&co" for m in DIRECTIONS}


def _add(a, b):
    return [x + y for x, y in zip(a, b, strict=True)]


def _sub(a, b):
    return [x - y for x, y in zip(a, b, strict=True)]


TI = {"fid": [50, 52, 51, 55, 53], "kid": [0.05, 0.06, 0.055, 0.058, 0.052], "cmmd": [1.0, 1.1, 1.05, 1.2, 0.95],
      "csd": [0.5, 0.52, 0.51, 0.49, 0.53]}
LORA = {"fid": [44, 46, 45, 49, 47], "kid": [0.07, 0.072, 0.069, 0.075, 0.071], "cmmd": [0.9, 1.0, 0.98, 1.1, 0.92],
        "csd": [0.45, 0.47, 0.44, 0.46, 0.48]}
VALUES = {
    "ti": TI,
    # FID: oriented differences 1..5 -> mean 3, t = 3*sqrt(2), p = 1 - 36/(11*sqrt(11)); KID clearly better;
    # CMMD differences average to 0 (p = 1); CSD identical to TI (no test possible: inconclusive).
    "nsync": {"fid": _sub(TI["fid"], [1, 2, 3, 4, 5]), "kid": _sub(TI["kid"], [0.010, 0.011, 0.009, 0.0105, 0.0095]),
              "cmmd": _add(TI["cmmd"], [0.1, -0.1, 0.2, -0.2, 0.0]), "csd": list(TI["csd"])},
    "lora": LORA,
    # Significantly worse FID and CMMD (contradicted), better CSD (supported), noise on KID.
    "nsync-lora": {"fid": _add(LORA["fid"], [2.0, 2.1, 1.9, 2.05, 1.95]),
                   "kid": _sub(LORA["kid"], [0.001, 0.003, -0.002, 0.0, 0.002]),
                   "cmmd": _add(LORA["cmmd"], [0.5, 0.52, 0.48, 0.51, 0.49]),
                   "csd": _add(LORA["csd"], [0.05, 0.06, 0.055, 0.052, 0.058])},
}
# The report's comparisons: the default pairs, then the pair the claims add (nsync vs lora). Each pair is one
# claim of baselines/claims.toml, so each is its own Holm family (4 metrics; 3 where a test had no p-value).
PAIRS = [("nsync", "ti"), ("nsync-lora", "lora"), ("nsync", "lora")]
CLAIM_OF = {("nsync", "ti"): "nsync-beats-ti", ("nsync-lora", "lora"): "nsync-lora-beats-lora",
            ("nsync", "lora"): "nsync-beats-lora"}
# baselines/claims.toml declares the rule `both`, and at 5 seeds no exact test can go below 2/2^5 = 0.0625:
# every verdict the t-test reaches is "(t only)".
EXPECTED_VERDICTS = {
    ("nsync-beats-ti", "fid"): "supported (t only)",  # raw p 0.0132, Holm over 3 tests: 0.0265; exact p 0.0625
    ("nsync-beats-ti", "kid"): "supported (t only)",
    ("nsync-beats-ti", "cmmd"): "inconclusive",
    ("nsync-beats-ti", "csd"): "inconclusive",
    ("nsync-beats-lora", "fid"): "contradicted (t only)",
    ("nsync-beats-lora", "kid"): "supported (t only)",
    ("nsync-beats-lora", "cmmd"): "inconclusive",
    ("nsync-beats-lora", "csd"): "supported (t only)",
    ("nsync-lora-beats-lora", "fid"): "contradicted (t only)",
    ("nsync-lora-beats-lora", "kid"): "inconclusive",
    ("nsync-lora-beats-lora", "cmmd"): "contradicted (t only)",
    ("nsync-lora-beats-lora", "csd"): "supported (t only)",
    # No ldm runs in this store: the claim against the untrained base model cannot be tested.
    **{("nsync-beats-ldm", metric): "not tested" for metric in ("fid", "kid", "cmmd", "csd")},
}
# An extra endpoint the runs log as metrics/leakage (lower is better); only a claims file that declares it
# brings it into a report.
LEAKAGE = {"ti": [0.30, 0.32, 0.31, 0.35, 0.33], "nsync": [0.20, 0.23, 0.20, 0.26, 0.21],
           "lora": [0.40, 0.41, 0.39, 0.42, 0.40], "nsync-lora": [0.41, 0.40, 0.40, 0.43, 0.42]}
PROMPTS = 3
METHOD_INDEX = {"ti": 0, "nsync": 1, "lora": 2, "nsync-lora": 3}


def image_csd(method: str, seed: int, index: int) -> float:
    """Per-image CSD: a method effect, prompt and seed effects, and a deterministic wobble."""
    base = {"ti": 0.5, "nsync": 0.52, "lora": 0.45, "nsync-lora": 0.44}[method]
    wobble = 0.002 * ((seed * 3 + index * 7 + METHOD_INDEX[method]) % 5 - 2)
    return base + 0.01 * index + 0.001 * seed + wobble


def holm(p_values):
    """Holm step-down adjustment written out by hand (nan = test not run, not counted)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    adjusted, running = np.full(p.shape, np.nan), 0.0
    for k, i in enumerate(order):
        running = max(running, (len(valid) - k) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def t_test(d):
    d = np.asarray(d, dtype=float)
    return math.nan if np.all(d == d[0]) else float(sps.ttest_1samp(d, 0.0).pvalue)


def sign_flip_p(d):
    """Two-sided sign-flip permutation p by listing all 2^n sign patterns (nan when every d is 0)."""
    d = np.asarray(d, dtype=float)
    if not np.any(d):
        return math.nan
    sums = [abs(sum(s * x for s, x in zip(signs, d, strict=True))) for signs in itertools.product([1, -1],
                                                                                                  repeat=d.size)]
    return float(np.mean(np.asarray(sums) >= abs(d.sum()) - 1e-9))


def oriented(candidate, baseline, metric):
    c, b = np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)
    return b - c if DIRECTIONS[metric] == "lower" else c - b


def _png(color, size=8):
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _create_run(client, experiment_id, method, seed, implementations=IMPLEMENTATIONS, values=VALUES):
    coordinates = {"style": STYLE, "method": method, "seed": str(seed), "profile": "smoke", "protocol": "matched"}
    tags = {**schema.run_tags(coordinates, f"{method}-{seed}"), **schema.kind_tag(schema.RUN_KIND),
            "git_sha": "abc1234",
            "libraries": json.dumps({"numpy": "2.0.0", "mlflow": "3.17.2"}),
            "hardware": json.dumps({"python": "3.11", "device": "cpu"})}
    for metric, implementation in implementations.items():
        tags[schema.metric_tag(metric, schema.DIRECTION)] = schema.direction_text(DIRECTIONS[metric])
        tags[schema.metric_tag(metric, schema.IMPLEMENTATION)] = implementation
    run_id = client.create_run(experiment_id, run_name=f"{STYLE}/{method}/seed{seed}", tags=tags).info.run_id
    client.log_batch(run_id, metrics=[Metric(f"metrics/{m}", float(values[method][m][seed]), 0, 0)
                                      for m in implementations])
    if values is VALUES:
        client.log_batch(run_id, metrics=[Metric("metrics/leakage", LEAKAGE[method][seed], 0, 0)])
    return run_id


def _log_artifacts(client, run_id, method, seed, tmp):
    folder = tmp / run_id
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(PROMPTS):
        rows.append({"index": i, "file": f"{i:05d}.png", "source": f"real_{i:03d}.png", "seed": 1000 * seed + i,
                     "prompt": f"prompt {i} in the style of <s>", "csd": image_csd(method, seed, i)})
    pd.DataFrame(rows).to_csv(folder / "per_image_scores.csv", index=False)
    client.log_artifact(run_id, str(folder / "per_image_scores.csv"), "eval")
    if seed == 0:  # evaluation images and manifest for the image grid
        with (folder / "manifest.jsonl").open("w") as handle:
            for row in rows:
                handle.write(json.dumps({**{k: row[k] for k in ("index", "file", "source", "seed", "prompt")},
                                         "caption": f"caption {row['index']} <b>"}) + "\n")
                (folder / "images" / row["file"]).write_bytes(_png((40 * METHOD_INDEX[method], 90, 160)))
        client.log_artifact(run_id, str(folder / "manifest.jsonl"), "eval")
        client.log_artifacts(run_id, str(folder / "images"), "eval/images")
    if seed in (0, 1) and method in ("ti", "nsync"):
        history = [Metric("train/loss", 1.0 / (step + 1) + 0.01 * seed, 0, step) for step in range(1, 6)]
        if method == "nsync":
            history += [Metric("grad/cos_pos_neg", 0.1 * step - 0.2, 0, step) for step in range(1, 6)]
        client.log_batch(run_id, metrics=history)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite MLflow store with 20 finished runs (4 methods x 5 seeds) of experiment "known"."""
    tmp = tmp_path_factory.mktemp("known")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("known", artifact_location=artifact_root(uri))
    for method in VALUES:
        for seed in SEEDS:
            run_id = _create_run(client, experiment_id, method, seed)
            _log_artifacts(client, run_id, method, seed, tmp / "files")
            client.set_terminated(run_id, "FINISHED")
    data_root = tmp / "data"
    (data_root / STYLE / "test").mkdir(parents=True)
    (data_root / STYLE / "test" / "real_000.png").write_bytes(_png((250, 240, 220), size=16))  # others missing
    return {"uri": uri, "tmp": tmp, "data_root": data_root}


@pytest.fixture(scope="module")
def report(store):
    return build_report(["known"], tracking_uri=store["uri"], out_dir=store["tmp"] / "report",
                        data_root=store["data_root"])


def test_summary_has_the_known_means_and_best_per_column(report):
    summary = pd.read_csv(report.summary_csv)
    assert len(summary) == 16
    for _, row in summary.iterrows():
        values = np.asarray(VALUES[row["method"]][row["metric"]], dtype=float)
        assert row["n"] == 5 and row["style"] == STYLE
        assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
        half = sps.t.ppf(0.975, 4) * values.std(ddof=1) / math.sqrt(5)
        assert row["ci_high"] - row["mean"] == pytest.approx(half, rel=1e-9)
    best = summary[summary["best"]].set_index("metric")["method"]
    assert best["fid"] == "lora" and best["kid"] == "nsync" and best["cmmd"] == "lora"
    assert summary.set_index(["method", "metric"]).loc[("ti", "fid"), "mean"] == pytest.approx(52.2)


def test_comparisons_match_scipy_and_hand_computed_holm(report):
    comparisons = pd.read_csv(report.comparisons_csv)
    assert len(comparisons) == 12 and set(comparisons["unit"]) == {"seed"}
    table = comparisons.set_index(["candidate", "baseline", "metric"])
    for candidate, baseline in PAIRS:  # one claim, one family each: Holm over its own tests only
        expected = []
        for metric in DIRECTIONS:
            d = oriented(VALUES[candidate][metric], VALUES[baseline][metric], metric)
            expected.append((metric, d.mean(), t_test(d), sign_flip_p(d), int(np.sum(d > 0))))
        p_t_adj = holm([e[2] for e in expected])
        p_perm_adj = holm([e[3] for e in expected])
        for (metric, mean, p_t, p_perm, wins), t_adj, perm_adj in zip(expected, p_t_adj, p_perm_adj, strict=True):
            row = table.loc[(candidate, baseline, metric)]
            assert row["n"] == 5 and row["family"] == row["claim"] == CLAIM_OF[(candidate, baseline)]
            assert row["family_size"] == sum(not math.isnan(e[2]) for e in expected)
            assert row["mean_diff"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
            assert row["wins"] == wins and row["prob_improvement"] == pytest.approx(wins / 5)
            for got, want in ((row["p_t"], p_t), (row["p_t_adj"], t_adj), (row["p_perm"], p_perm),
                              (row["p_perm_adj"], perm_adj)):
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-9)
    # The worked example: differences 1..5, t = 3*sqrt(2), two-sided p = 1 - 36/(11*sqrt(11)).
    fid = table.loc[("nsync", "ti", "fid")]
    assert fid["mean_diff"] == pytest.approx(3.0)
    assert fid["t"] == pytest.approx(3 * math.sqrt(2))
    assert fid["p_t"] == pytest.approx(0.01323559956368269, rel=1e-12)
    assert fid["p_t"] == pytest.approx(1 - 36 / (11 * math.sqrt(11)), rel=1e-12)
    assert fid["d_z"] == pytest.approx(3 / math.sqrt(2.5))
    assert fid["ci_low"] <= 3.0 <= fid["ci_high"]
    assert fid["p_wilcoxon"] == pytest.approx(0.0625) and fid["wilcoxon_method"] == "exact"
    # 5 of 5 seeds better: the exact tests' floor 2/2^5, and the Clopper-Pearson interval [0.025^(1/5), 1].
    assert fid["p_perm"] == 2 / 2**5 and fid["perm_method"] == "exact"
    assert fid["pi_low"] == pytest.approx(0.025 ** (1 / 5), rel=1e-12) and fid["pi_high"] == 1.0


def test_claim_verdicts(report):
    claims = pd.read_csv(report.claims_csv)
    verdicts = {(row["claim"], row["metric"]): row["verdict"] for _, row in claims.iterrows()}
    assert verdicts == EXPECTED_VERDICTS
    # The same verdicts from the rule written out here: both tests below alpha after Holm -> supported; only
    # the t-test -> "(t only)"; the sign says supported or contradicted.
    comparisons = pd.read_csv(report.comparisons_csv)
    for _, c in comparisons.iterrows():
        word = "supported" if c["mean_diff"] > 0 else "contradicted"
        expected = (word if c["p_perm_adj"] < 0.05 else f"{word} (t only)") if c["p_t_adj"] < 0.05 \
            else "inconclusive"
        assert verdicts[(c["claim"], c["metric"])] == expected
    families = pd.read_csv(report.out_dir / "families.csv").set_index("family")
    assert families.loc["nsync-beats-ti", "tests"] == 3 and families.loc["nsync-beats-lora", "tests"] == 4
    assert not families["reachable"].any()
    assert families.loc["nsync-beats-lora", "note"] == ("5 seeds cannot reach 0.05 with an exact test (smallest "
                                                        "two-sided p 2/2^5 = 0.0625); need >= 6, or >= 8 with Holm "
                                                        "over 4")


def test_per_prompt_csd_is_its_own_holm_family(report):
    per_prompt = pd.read_csv(report.per_prompt_csv)
    assert set(per_prompt["unit"]) == {"prompt x seed"} and set(per_prompt["metric"]) == {"csd"}
    expected = []
    for candidate, baseline in PAIRS:
        d = [image_csd(candidate, s, i) - image_csd(baseline, s, i) for s in SEEDS for i in range(PROMPTS)]
        expected.append((candidate, baseline, np.mean(d), t_test(d)))
    adjusted = holm([e[3] for e in expected])
    table = per_prompt.set_index(["candidate", "baseline"])
    for (candidate, baseline, mean, p), p_adj in zip(expected, adjusted, strict=True):
        row = table.loc[(candidate, baseline)]
        assert row["n"] == len(SEEDS) * PROMPTS
        assert row["mean_diff"] == pytest.approx(mean, rel=1e-9)
        assert row["p_t"] == pytest.approx(p, rel=1e-9)
        assert row["p_t_adj"] == pytest.approx(p_adj, rel=1e-9)


def test_markdown_and_html_show_the_numbers_verdicts_and_escaped_text(report):
    markdown = report.markdown.read_text(encoding="utf-8")
    comparisons = pd.read_csv(report.comparisons_csv).set_index(["candidate", "baseline", "metric"])
    fid = comparisons.loc[("nsync", "ti", "fid")]
    for text in ("0.0132", fmt_p(fid["p_t_adj"]), "+3 ", "52.2 ± ", "(5)", "★", "FID ↓", "CSD ↑", "supported",
                 "contradicted", "inconclusive", "Verdicts: supported 0, supported (t only) 5, contradicted 0, "
                 "contradicted (t only) 3, inconclusive 4, not tested 4", "alpha = 0.05", "## Provenance",
                 "## Methods note", "abc1234", "figures/grid-", "Holm",
                 "Rule: test = both: both the paired t-test and the exact",
                 "Claims file: baselines/claims.toml; it names no plan",
                 "5 seeds cannot reach 0.05 with an exact test", "better in 5/5 seeds (48–100%)",
                 "| nsync-beats-ti | FID | d\\_z 1 | no published spread"):
        assert text in markdown, text
    assert fmt_p(fid["p_t_adj"]) == "0.0265"
    assert "test-extractor\\<v1\\>&co" in markdown  # Markdown-escaped run text
    assert "FID and KID: Inception mode unknown" in markdown  # the summary says which mode its FID/KID use
    page = report.html.read_text(encoding="utf-8")
    assert page.count("<table") >= 8 and "<th>p t (adj)</th>" in page and "<th>p permutation (adj)</th>" in page
    assert 'class="t-only"' in page and 'class="inconclusive"' in page and "<strong>" in page
    assert "test-extractor&lt;v1&gt;&amp;co" in page and "<v1>" not in page
    assert page.count('src="data:image/png;base64,') == len(report.figures) >= 3
    assert all(path.is_file() and path.parent.name == "figures" for path in report.figures)
    assert not (report.out_dir / ".work").exists()


def test_report_is_logged_to_mlflow_and_ignored_by_later_reports(report, store):
    from nsync_bench.report.runs_table import load_report_data

    client = MlflowClient(store["uri"])
    experiment = client.get_experiment_by_name("known")
    runs = client.search_runs([experiment.experiment_id], schema.kind_filter(schema.REPORT_KIND))
    assert [r.info.run_id for r in runs] == [report.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "report"
    assert run.data.tags["experiments"] == "known" and run.data.tags["alpha"] == "0.05"
    names = {a.path for a in client.list_artifacts(report.run_id)}
    assert {"index.html", "report.md", "summary.csv", "comparisons.csv", "claims.csv", "figures"} <= names
    assert len(load_report_data(store["uri"], ["known"]).runs) == 20


def test_image_grid_uses_real_images_where_present(store):
    from nsync_bench.report.grids import CAPTION_HEIGHT, HEADER_HEIGHT, PAD, build_grids
    from nsync_bench.report.runs_table import load_report_data

    data = load_report_data(store["uri"], ["known"])
    grids, warnings = build_grids(data, store["tmp"] / "grid-work", store["data_root"], prompts=2, cell=32)
    assert warnings == []
    (grid,) = grids
    assert grid.methods == ("ti", "nsync", "lora", "nsync-lora") and grid.seed == 0
    assert grid.missing_real == 1 and grid.missing_generated == 0  # real_001.png is not in the data root
    image = Image.open(io.BytesIO(grid.png))
    assert image.size == (PAD + 5 * (32 + PAD), HEADER_HEIGHT + 2 * (CAPTION_HEIGHT + 32 + PAD) + PAD)
    row = HEADER_HEIGHT + CAPTION_HEIGHT + 16
    assert image.getpixel((PAD + 16, row)) == (250, 240, 220)  # the real image
    assert image.getpixel((PAD + 2 * (32 + PAD) + 16, row)) == (40, 90, 160)  # nsync's image


def test_mixing_metric_implementations_is_refused(store, tmp_path):
    client = MlflowClient(store["uri"])
    experiment_id = client.create_experiment("mixed", artifact_location=artifact_root(store["uri"]))
    for k, method in enumerate(("ti", "nsync")):
        implementation = {"fid": f"fid|inception-{'AB'[k]}"}
        run_id = _create_run(client, experiment_id, method, 0, implementations=implementation)
        client.set_terminated(run_id, "FINISHED")
    with pytest.raises(ReportError) as info:
        build_report(["mixed"], tracking_uri=store["uri"], out_dir=tmp_path / "out", log_to_mlflow=False)
    assert "fid|inception-A" in str(info.value) and "fid|inception-B" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_arguments_teach(tmp_path, store):
    with pytest.raises(ReportError, match="alpha"):
        build_report(["known"], tracking_uri=store["uri"], alpha=1.5)
    with pytest.raises(ReportError, match=r"no MLflow experiment 'nope'.*known"):
        build_report(["nope"], tracking_uri=store["uri"], out_dir=tmp_path / "x")


def test_number_formats_and_default_folder():
    from datetime import datetime, timezone

    assert fmt_p(0.0123456) == "0.0123" and fmt_p(1.234e-5) == "1.2e-05" and fmt_p(float("nan")) == "—"
    assert fmt(52.2) == "52.2" and fmt(123.456) == "123.5" and fmt(3.0, signed=True) == "+3"
    assert redact("https://me:secret@mlflow.example:5000") == "https://me:***@mlflow.example:5000"
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert str(default_out_dir(["a/b c"], stamp)) == "reports/a_b_c-20260102T030405Z"


@pytest.mark.slow
def test_cli_report_prints_verdicts_comparisons_and_paths(store, tmp_path):
    from nsync_bench.cli.main import app

    out = tmp_path / "cli-report"
    result = CliRunner().invoke(app, ["report", "--experiment", "known", "--tracking-uri", store["uri"], "--out",
                                      str(out), "--no-mlflow", "--data-root", str(store["data_root"]),
                                      "--compare", "nsync-lora:ti"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "supported (t only) 5" in text and "contradicted (t only) 3" in text and "inconclusive 4" in text
    assert "rule: test = both" in text
    assert "nsync-lora vs ti" in text and str(out / "index.html") in "".join(result.output.split())
    assert (out / "index.html").is_file()


def test_cli_report_rejects_a_malformed_comparison(store):
    from nsync_bench.cli.main import app

    result = CliRunner().invoke(app, ["report", "--experiment", "known", "--tracking-uri", store["uri"],
                                      "--compare", "nsync-ti"])
    assert result.exit_code == 2
    assert "CANDIDATE:BASELINE" in " ".join(result.output.split())


def test_report_help_imports_nothing_heavy():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom nsync_bench.cli.main import app\n"
            "result = CliRunner().invoke(app, ['report', '--help'])\nassert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_power_columns_under_the_default_rule_at_five_seeds(report):
    """At 5 seeds the declared rule needs the exact test, which cannot go below 2/2^5 > alpha/m: the MDE is
    infinite, the power 0, and the declared d_z = 1 needs the seeds the simulation finds (>= the t-test's)."""
    comparisons = pd.read_csv(report.comparisons_csv).set_index(["candidate", "baseline", "metric"])
    fid = comparisons.loc[("nsync", "ti", "fid")]
    assert fid["test"] == "both" and fid["level"] == pytest.approx(0.05 / 3)
    assert math.isinf(fid["mde_dz"]) and math.isinf(fid["MDE"]) and fid["power_at_n"] == 0.0
    assert (fid["effect_kind"], fid["effect"]) == ("d_z", 1.0) and "no published spread" in fid["effect_reason"]
    level = 0.05 / 3
    t_power = [sps.nct.sf(sps.t.ppf(1 - level / 2, k - 1), k - 1, math.sqrt(k)) for k in range(2, 40)]
    t_needed = 2 + next(i for i, p in enumerate(t_power) if p >= 0.8)
    assert t_needed <= fid["seeds_needed"] <= t_needed + 2  # an exact test needs at least the t-test's seeds
    # SD interval (chi-square, 4 df) for the differences 1..5.
    sd = np.std([1, 2, 3, 4, 5], ddof=1)
    assert fid["sd_low"] == pytest.approx(sd * math.sqrt(4 / sps.chi2.ppf(0.975, 4)), rel=1e-12)
    assert fid["sd_high"] == pytest.approx(sd * math.sqrt(4 / sps.chi2.ppf(0.025, 4)), rel=1e-12)
    markdown = report.markdown.read_text(encoding="utf-8")
    assert "inconclusive: no exact test can reach the level with 5 seeds (the declared effect needs" in markdown
    assert "no exact test can reach 0.0167 with 5 seeds" in markdown and "95% interval [" in markdown


CUSTOM_CLAIMS = """
schema = 1
description = "Test claims: one family of two claims, a log scale and an extra endpoint; the t-test decides."
[rule]
test = "t"
alpha = 0.05
[endpoints.leakage]
direction = "lower"
description = "share of images showing a negative-set attribute"
label = "Leakage"
[[claims]]
id = "a"
text = "NSYNC beats TI on log FID and leakage"
candidate = "nsync"
baseline = "ti"
metrics = ["fid", "leakage"]
family = "main"
[claims.effects]
fid = { raw = 0.05, reason = "a 5 % ratio" }
leakage = { d_z = 1.0, reason = "one SD" }
[claims.transforms]
fid = "log"
[[claims]]
id = "b"
text = "NSYNC-LoRA beats LoRA on CSD"
candidate = "nsync-lora"
baseline = "lora"
metrics = ["csd"]
family = "main"
[claims.effects]
csd = { raw = 0.01, reason = "a tenth of the spread between styles" }
"""


@pytest.fixture(scope="module")
def custom_report(store):
    path = store["tmp"] / "custom-claims.toml"
    path.write_text(CUSTOM_CLAIMS, encoding="utf-8")
    return build_report(["known"], tracking_uri=store["uri"], out_dir=store["tmp"] / "custom-report",
                        data_root=store["data_root"], claims=path, log_to_mlflow=False, reference=False)


def test_declared_families_scales_and_endpoints(custom_report):
    """Claims a and b form the family "main" (3 tests); every other comparison is exploratory (Holm among
    themselves); FID is tested on the log scale; leakage, a declared endpoint, is read and compared."""
    comparisons = pd.read_csv(custom_report.comparisons_csv)
    summary = pd.read_csv(custom_report.summary_csv)
    assert set(summary["metric"]) == {*DIRECTIONS, "leakage"} and len(summary) == 20
    main = comparisons[comparisons["family"] == "main"].set_index(["candidate", "baseline", "metric"])
    assert sorted(main.index) == [("nsync", "ti", "fid"), ("nsync", "ti", "leakage"), ("nsync-lora", "lora", "csd")]
    log_fid = np.log(TI["fid"]) - np.log(VALUES["nsync"]["fid"])
    leak = np.asarray(LEAKAGE["ti"]) - np.asarray(LEAKAGE["nsync"])
    csd = np.asarray(VALUES["nsync-lora"]["csd"]) - np.asarray(LORA["csd"])
    raw = {("nsync", "ti", "fid"): log_fid, ("nsync", "ti", "leakage"): leak, ("nsync-lora", "lora", "csd"): csd}
    adjusted = dict(zip(raw, holm([t_test(d) for d in raw.values()]), strict=True))
    for key, d in raw.items():
        row = main.loc[key]
        assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-12) and row["family_size"] == 3
        assert row["p_t_adj"] == pytest.approx(adjusted[key], rel=1e-9)
    assert main.loc[("nsync", "ti", "fid"), "transform"] == "log"
    exploratory = comparisons[comparisons["family"] == "exploratory"]
    # nsync vs ti on KID, CMMD, CSD; nsync-lora vs lora on FID, KID, CMMD and leakage
    assert len(exploratory) == 7 and set(exploratory["claim"].fillna("")) == {""}

    def values(method, metric):
        return LEAKAGE[method] if metric == "leakage" else VALUES[method][metric]

    p = [t_test(np.subtract(values(b, m), values(c, m)) if m != "csd" else np.subtract(values(c, m), values(b, m)))
         for c, b, m in zip(exploratory["candidate"], exploratory["baseline"], exploratory["metric"], strict=True)]
    np.testing.assert_allclose(exploratory["p_t_adj"], holm(p), rtol=1e-9)
    claims = pd.read_csv(custom_report.claims_csv).set_index(["claim", "metric"])
    for key, verdict in ((("a", "fid"), "supported"), (("a", "leakage"), "supported"), (("b", "csd"), "supported")):
        assert claims.loc[key, "verdict"] == verdict and claims.loc[key, "test"] == "t"
    markdown = custom_report.markdown.read_text(encoding="utf-8")
    for text in ("log FID", "Leakage ↓ |", "test = t: the paired t-test", "exploratory (exploratory: adjusted among "
                 "themselves, no verdicts)", "| a | log FID | 0.05 | a 5 % ratio |"):
        assert text in markdown, text


def test_power_under_the_t_rule_matches_the_noncentral_t(custom_report):
    """MDE and seeds needed for the declared effects, at alpha / 3, checked with scipy's noncentral t; a raw
    effect uses the observed SD, and the seeds needed are also given at the ends of its 95% interval."""
    comparisons = pd.read_csv(custom_report.comparisons_csv).set_index(["candidate", "baseline", "metric"])
    level = 0.05 / 3

    def power(dz, k):
        crit = sps.t.ppf(1 - level / 2, k - 1)
        return sps.nct.sf(crit, k - 1, math.sqrt(k) * dz) + sps.nct.cdf(-crit, k - 1, math.sqrt(k) * dz)

    def needed(dz):
        return next(k for k in range(2, 10_000) if power(dz, k) >= 0.8)

    fid = comparisons.loc[("nsync", "ti", "fid")]
    sd = np.std(np.log(TI["fid"]) - np.log(VALUES["nsync"]["fid"]), ddof=1)
    assert fid["sd_diff"] == pytest.approx(sd, rel=1e-12) and fid["level"] == pytest.approx(level)
    assert power(fid["mde_dz"], 5) == pytest.approx(0.8, abs=1e-6) and fid["MDE"] == pytest.approx(fid["mde_dz"] * sd)
    assert fid["effect_dz"] == pytest.approx(0.05 / sd) and fid["power_at_n"] == pytest.approx(power(0.05 / sd, 5))
    assert fid["seeds_needed"] == needed(0.05 / sd)
    low = sd * math.sqrt(4 / sps.chi2.ppf(0.975, 4))
    high = sd * math.sqrt(4 / sps.chi2.ppf(0.025, 4))
    assert (fid["seeds_needed_low"], fid["seeds_needed_high"]) == (needed(0.05 / low), needed(0.05 / high))
    leakage = comparisons.loc[("nsync", "ti", "leakage")]
    assert leakage["seeds_needed"] == needed(1.0) and pd.isna(leakage["seeds_needed_low"])


def test_paired_plot_shows_the_per_seed_differences_the_test_sees(report, store):
    from nsync_bench.report.paired_plot import paired_figure, seed_differences
    from nsync_bench.report.runs_table import load_report_data

    results = load_report_data(store["uri"], ["known"]).results
    fid = seed_differences(results, "nsync", "ti", "fid")
    assert list(fid.index) == SEEDS and fid.to_list() == pytest.approx([1, 2, 3, 4, 5])  # oriented: + = better
    csd = seed_differences(results, "nsync-lora", "lora", "csd")
    assert csd.to_list() == pytest.approx([0.05, 0.06, 0.055, 0.052, 0.058])
    assert seed_differences(results, "nsync", "ldm", "fid").empty
    log_fid = seed_differences(results, "nsync", "ti", "fid", "log")  # on a declared log scale: the log ratio
    assert log_fid.to_list() == pytest.approx(list(np.log(TI["fid"]) - np.log(VALUES["nsync"]["fid"])), rel=1e-12)
    comparisons = pd.read_csv(report.comparisons_csv)
    png = paired_figure(results, comparisons, "t")
    assert png is not None and png.startswith(b"\x89PNG")
    assert paired_figure(results, comparisons.iloc[0:0], "t") is None
    paired = [p for p in report.figures if p.name.startswith("paired-")]
    assert [p.name for p in paired] == ["paired-toy-pastel-smoke-matched.png"]
    assert "Paired differences per seed" in report.markdown.read_text(encoding="utf-8")


def test_paired_plot_draws_the_per_seed_distribution():
    """A bimodal outcome (6 of 10 seeds near +2,500, 4 near +600) is drawn as a violin with every seed as a
    point, and the tick label says how many seeds improved; 3 seeds get points only (no shape to show)."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    from nsync_bench.report.paired_plot import _distribution

    axis = Figure().add_subplot()
    bimodal = np.array([2285, 2616, 736, 517, 2701, 656, 2507, 2334, 513, 2656], dtype=float)
    assert _distribution(axis, 0, bimodal, "#d62728", first=True) == "10/10 better"
    assert sum(isinstance(c, PolyCollection) for c in axis.collections) == 1
    (points,) = axis.lines
    assert sorted(points.get_ydata()) == sorted(bimodal)
    axis = Figure().add_subplot()
    assert _distribution(axis, 0, np.array([1.0, -2.0, 3.0]), "#1f77b4", first=True) == "2/3 better"
    assert not axis.collections
