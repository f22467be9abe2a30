"""A real report from smoke runs (2 styles x 5 methods x 3 seeds), checked in headless Chromium.

The runs go through the real pipeline (training, generation, metrics, MLflow) with the FAST
overrides; the report is then opened in Chromium: it must load without console errors, with
its tables and images visible, and its screenshot must not be blank.
"""

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from mlflow.tracking import MlflowClient
from PIL import Image

pytestmark = pytest.mark.slow

STYLES = ("toy-pastel", "toy-ink")
METHODS = ("ldm", "ti", "lora", "nsync", "nsync-lora")
PAIRS = 4  # nsync vs ti, nsync-lora vs lora, and the claims' nsync vs ldm and nsync vs lora
SEEDS = (0, 1, 2)
EXPERIMENT = "smoke-report"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# Injected into a copy of the page only: measures what a reader would see once the page has loaded.
VISIBILITY_SCRIPT = """<script>
window.addEventListener("load", () => {
  const shown = (el) => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const images = [...document.images].map((img) => ({ok: img.complete && img.naturalWidth > 0 && shown(img)}));
  const tables = [...document.querySelectorAll("table")].map((t) => ({ok: shown(t), rows: t.tBodies[0].rows.length}));
  const out = document.createElement("pre"); out.id = "visibility-check";
  out.textContent = JSON.stringify({images, tables}); document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory, data_root):
    """30 smoke runs in a private MLflow store, then the report built from them."""
    from nsync_bench.pipeline.runner import RunOptions, run
    from nsync_bench.report.build import build_report

    tmp = tmp_path_factory.mktemp("smoke-report")
    options = RunOptions(runs_dir=tmp / "runs", data_root=data_root, tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                         experiment=EXPERIMENT)
    for style in STYLES:
        for method in METHODS:
            for seed in SEEDS:
                result = run(style=style, method=method, seed=seed, overrides=FAST, options=options)
                # Every run must be scored: a run without its four metrics is a failure, not a skip.
                assert {"metrics/fid", "metrics/kid", "metrics/cmmd", "metrics/csd"} <= set(result.metrics), (
                    style, method, seed, sorted(result.metrics))
    report = build_report([EXPERIMENT], tracking_uri=options.tracking_uri, out_dir=tmp / "report",
                          data_root=data_root)
    return {"report": report, "uri": options.tracking_uri, "tmp": tmp}


def test_report_from_smoke_runs_renders(smoke_report):
    report = smoke_report["report"]
    summary = pd.read_csv(report.summary_csv)
    assert len(summary) == len(STYLES) * len(METHODS) * 4 and set(summary["n"]) == {len(SEEDS)}
    comparisons = pd.read_csv(report.comparisons_csv)
    assert len(comparisons) == len(STYLES) * PAIRS * 4 and set(comparisons["n"]) == {len(SEEDS)}
    assert set(comparisons["ci_method"]) <= {"t", "degenerate"}  # 3 seeds: below the bootstrap minimum
    assert comparisons["MDE"].notna().all() and (comparisons["MDE"] > 0).all()
    claims = pd.read_csv(report.claims_csv)
    assert len(claims) == len(STYLES) * PAIRS * 4
    assert set(claims["verdict"]) <= {"supported", "supported (t only)", "contradicted", "contradicted (t only)",
                                      "inconclusive"}
    # 3 seeds: no exact test can go below 2/2^3 = 0.25, so the default rule can support nothing, and says so.
    assert "supported" not in set(claims["verdict"]) and (claims["p_perm"] >= 0.25).all()
    families = pd.read_csv(report.out_dir / "families.csv")
    assert not families["reachable"].any() and families["note"].str.startswith("3 seeds cannot reach 0.05").all()
    per_prompt = pd.read_csv(report.per_prompt_csv)
    assert len(per_prompt) == len(STYLES) * PAIRS and set(per_prompt["unit"]) == {"prompt x seed"}
    reference = pd.read_csv(report.out_dir / "reference.csv")
    assert len(reference) == len(STYLES) * 4 and set(reference["n_generated"]) == {2}
    names = sorted(path.name for path in report.figures)
    assert names == sorted(["metrics-smoke-matched.png", *(f"curves-{s}-smoke-matched.png" for s in STYLES),
                            *(f"paired-{s}-smoke-matched.png" for s in STYLES),
                            *(f"grid-{s}-smoke-matched.png" for s in STYLES)])
    markdown = report.markdown.read_text(encoding="utf-8")
    for style in STYLES:
        assert f"### {style} — smoke / matched" in markdown
    assert markdown.count("| real data (floor) |") == len(STYLES) and "| better in | MDE |" in markdown
    assert "| ldm |" in markdown
    # Equal seeds, one implementation per metric, one library set: the only warnings are the claims' families
    # that 3 seeds cannot decide.
    warnings = markdown[markdown.index("## Warnings"):markdown.index("## Summary")]
    assert warnings.count("- family ") == 4 and "cannot reach 0.05 with an exact test" in warnings
    run = MlflowClient(smoke_report["uri"]).get_run(report.run_id)
    assert run.data.tags["nsync_bench.kind"] == "report"


class _Dom(HTMLParser):
    """Tables (with their body rows) and image sources of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[int] = []
        self.images: list[str] = []
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(0)
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[-1] += 1
        elif tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False


def _chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium); CI installs it")
    return binary


def _run_chromium(binary, profile, *args):
    command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


@pytest.mark.browser
def test_report_html_loads_in_headless_chromium(smoke_report, tmp_path):
    binary = _chromium()
    report = smoke_report["report"]

    # 1. The page as written: its DOM after load, and the browser console.
    page = _run_chromium(binary, tmp_path / "profile-1", "--enable-logging=stderr", "--v=0", "--dump-dom",
                         report.html.resolve().as_uri())
    console = [line for line in page.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "index.html" in line or "Uncaught" in line], console
    assert "Not allowed to load local resource" not in page.stderr
    dom = _Dom()
    dom.feed(page.stdout)
    assert len(dom.tables) >= 8 and all(rows >= 1 for rows in dom.tables), dom.tables
    assert len(dom.images) == len(report.figures)
    for src in dom.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            image.verify()

    # 2. What a reader sees: every image decoded and laid out, every table laid out with rows.
    check = tmp_path / "check.html"
    check.write_text(report.html.read_text(encoding="utf-8").replace("</body>", VISIBILITY_SCRIPT + "</body>"),
                     encoding="utf-8")
    measured = _run_chromium(binary, tmp_path / "profile-2", "--dump-dom", check.as_uri()).stdout
    found = re.search(r'<pre id="visibility-check">(.*?)</pre>', measured, re.S)
    assert found, "the visibility check did not run"
    visibility = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(visibility["images"]) == len(report.figures) and all(i["ok"] for i in visibility["images"])
    assert visibility["tables"] and all(t["ok"] and t["rows"] > 0 for t in visibility["tables"])

    # 3. A screenshot that is not blank.
    shot = tmp_path / "shot.png"
    _run_chromium(binary, tmp_path / "profile-3", f"--screenshot={shot}", "--window-size=1280,4000",
                  report.html.resolve().as_uri())
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape == (4000, 1280)
    assert pixels.std() > 20, f"screenshot looks blank (pixel std {pixels.std():.1f})"
