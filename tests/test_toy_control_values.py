"""The toy world's positive control, re-analysed from the per-seed values docs/toy-world.md publishes.

The report machinery (paired comparisons, the exact tests, Holm, the declared rule of
baselines/claims/toy-control.toml) must reproduce the published t-test numbers and give the exact
statements the t-test alone could not: at 5 seeds no exact test can go below 2/2^5 = 0.0625; over the
10 seeds FID improved in 10 of 10, exact p = 2/2^10 = 0.002.

Tolerances: the published per-seed values are rounded (FID to integers, CSD to two decimals), so
reproduced p-values are compared at the precision they were published with (two significant
digits), means and d_z within the rounding of the inputs.
"""

from __future__ import annotations

import pandas as pd
import pytest

from nsync_bench.report.analysis import compare
from nsync_bench.report.claims import load_claims
from nsync_bench.report.claims_check import check_claims
from nsync_bench.stats.paired import holm_bonferroni, paired_comparison

# docs/toy-world.md, "Read the per-seed values": untrained -> TI, world-dusk.
FID_UNTRAINED_0_4 = [2698, 2966, 2974, 2768, 3084]
FID_TI_0_4 = [413, 350, 2238, 2251, 383]
CSD_UNTRAINED_0_4 = [0.14, 0.10, 0.09, 0.16, 0.06]
CSD_TI_0_4 = [0.87, 0.89, 0.57, 0.53, 0.88]
FID_UNTRAINED_5_9 = [2946, 2967, 2750, 3201, 3088]
FID_TI_5_9 = [2290, 460, 416, 2688, 432]
# Published p-values of the metrics without per-seed values (KID, CMMD): the other members of the Holm family.
PUBLISHED = {"0-4": {"kid": 0.076, "cmmd": 0.00097}, "5-9": {"kid": 0.16, "cmmd": 0.00077, "csd": 0.0018}}


def _fid(ti, untrained, transform="none"):
    return paired_comparison(ti, untrained, direction="lower", transform=transform)


def test_published_t_tests_are_reproduced():
    fid = _fid(FID_TI_0_4, FID_UNTRAINED_0_4)
    assert fid.mean_diff == pytest.approx(1771, abs=0.5) and round(fid.d_z, 2) == 1.67
    assert f"{fid.p_t:.2g}" == "0.02"  # published 0.020
    csd = paired_comparison(CSD_TI_0_4, CSD_UNTRAINED_0_4, direction="higher")
    assert csd.mean_diff == pytest.approx(0.640, abs=0.005) and csd.d_z == pytest.approx(3.19, abs=0.03)
    assert f"{csd.p_t:.2g}" == "0.0021" and csd.p_t == pytest.approx(0.0020, abs=1e-4)  # published 0.0020
    later = _fid(FID_TI_5_9, FID_UNTRAINED_5_9)
    assert later.mean_diff == pytest.approx(1733, abs=0.5) and round(later.d_z, 2) == 1.64
    assert f"{later.p_t:.2g}" == "0.021"
    # Holm over the four metrics, with the published KID and CMMD p-values: FID 0.040 and 0.043.
    holm = holm_bonferroni([fid.p_t, PUBLISHED["0-4"]["kid"], PUBLISHED["0-4"]["cmmd"], csd.p_t])
    assert f"{holm[0]:.2g}" == "0.04" and f"{holm[3]:.2g}" == "0.0062"  # published 0.040, 0.0061 (rounded CSD)
    holm = holm_bonferroni([later.p_t, PUBLISHED["5-9"]["kid"], PUBLISHED["5-9"]["cmmd"], PUBLISHED["5-9"]["csd"]])
    assert f"{holm[0]:.2g}" == "0.043"


def test_exact_tests_at_five_and_ten_seeds():
    fid = _fid(FID_TI_0_4, FID_UNTRAINED_0_4)
    assert (fid.wins, fid.n) == (5, 5) and fid.p_perm == 0.0625 and fid.p_wilcoxon == 0.0625
    assert _fid(FID_TI_5_9, FID_UNTRAINED_5_9).p_perm == 0.0625
    pooled = _fid(FID_TI_0_4 + FID_TI_5_9, FID_UNTRAINED_0_4 + FID_UNTRAINED_5_9)
    assert (pooled.wins, pooled.n) == (10, 10) and pooled.p_perm == 2 / 1024 and f"{pooled.p_perm:.1g}" == "0.002"
    assert pooled.pi_low == pytest.approx(0.025 ** (1 / 10), rel=1e-12)  # 10 of 10: [0.69, 1]


def test_on_the_log_scale_fid_holm_p_is_about_0_08():
    """The issue's sensitivity statement: log(FID) gives FID a Holm p of about 0.08 on seeds 0-4. This is
    why the scale must be declared before the data: here the scale alone decides the verdict."""
    log_fid = _fid(FID_TI_0_4, FID_UNTRAINED_0_4, transform="log")
    csd = paired_comparison(CSD_TI_0_4, CSD_UNTRAINED_0_4, direction="higher")
    holm = holm_bonferroni([log_fid.p_t, PUBLISHED["0-4"]["kid"], PUBLISHED["0-4"]["cmmd"], csd.p_t])
    assert f"{holm[0]:.1g}" == "0.08"


def _results(ti: list[float], untrained: list[float], seeds: list[int]) -> pd.DataFrame:
    rows = [{"profile": "toy", "protocol": "matched", "style": "world-dusk", "metric": "fid", "direction": "lower",
             "method": method, "seed": seed, "value": float(value)}
            for method, values in (("ti", ti), ("untrained", untrained)) for seed, value in zip(seeds, values,
                                                                                              strict=True)]
    return pd.DataFrame(rows)


def test_the_toy_control_claims_file_gives_t_only_at_five_seeds_and_supported_at_ten():
    """The declared rule of the toy control's claims file (default test: both below 20 seeds) on FID alone."""
    claims = load_claims("toy-control")
    five = _results(FID_TI_0_4, FID_UNTRAINED_0_4, [0, 1, 2, 3, 4])
    comparisons = compare(five, [("ti", "untrained")], claims)
    verdicts = check_claims(comparisons, claims, 0.05, five)
    fid = verdicts.set_index(["claim", "metric"]).loc[("ti-beats-untrained", "fid")]
    assert fid["verdict"] == "supported (t only)" and fid["p_perm_adj"] == 0.0625
    ten = _results(FID_TI_0_4 + FID_TI_5_9, FID_UNTRAINED_0_4 + FID_UNTRAINED_5_9, list(range(10)))
    comparisons = compare(ten, [("ti", "untrained")], claims)
    fid = check_claims(comparisons, claims, 0.05, ten).set_index(["claim", "metric"]).loc[("ti-beats-untrained", "fid")]
    assert fid["verdict"] == "supported" and fid["p_perm_adj"] == pytest.approx(2 / 1024)
    # Only FID has per-seed values here: the family holds one test; KID, CMMD and CSD are "not tested".
    assert fid["family_size"] == 1


def test_world_control_judges_by_the_claims_file():
    """`nsync-bench world control` uses the same machinery: its comparison table carries both tests, the
    rule, and the note that 5 seeds cannot reach alpha with an exact test."""
    from nsync_bench.world.control import ControlResult, compare

    values = {"untrained": {"fid": FID_UNTRAINED_0_4, "csd": CSD_UNTRAINED_0_4},
              "ti": {"fid": FID_TI_0_4, "csd": CSD_TI_0_4}}
    table, notes = compare(values, "ti", "untrained")
    assert table["fid"]["verdict"] == table["csd"]["verdict"] == "supported (t only)"
    assert table["fid"]["p_perm"] == 0.0625 and table["fid"]["wins"] == 5
    assert table["fid"]["p_holm"] == pytest.approx(holm_bonferroni([table["fid"]["p_t"], table["csd"]["p_t"]])[0])
    assert notes == ["ti vs untrained: 5 seeds cannot reach 0.05 with an exact test (smallest two-sided p 2/2^5 = "
                     "0.0625); need >= 6, or >= 7 with Holm over 2"]
    result = ControlResult("world-dusk", [0, 1, 2, 3, 4], [], values, {"ti vs untrained": table}, rule="r",
                           notes=notes)
    text = result.markdown()
    assert "| fid | 1771 | 1.67 | 0.02 | 0.02 | 0.062 | 0.12 | 5/5 | supported (t only) |" in text
    assert "5 seeds cannot reach 0.05" in text


# docs/toy-world.md, "Two stronger comparators": the untrained base model with TI's starting prompt and with
# the oracle prompt (the target's attribute words), seeds 0-9, 96 images, fp32 sampling (as the TI runs).
FID_START_PROMPT = [2685, 2965, 2991, 2765, 3103, 2935, 2972, 2734, 3213, 3041]
FID_ORACLE = [420, 350, 407, 396, 391, 435, 437, 423, 443, 439]
CSD_ORACLE_0_4 = [0.871, 0.891, 0.871, 0.877, 0.875]


def test_the_comparators_as_published():
    fid_ti = FID_TI_0_4 + FID_TI_5_9
    start = _fid(fid_ti, FID_START_PROMPT)
    assert (start.wins, start.n) == (10, 10) and start.p_perm == 2 / 1024
    assert start.mean_diff == pytest.approx(1748, abs=1) and f"{start.p_t:.1g}" == "0.0003"
    oracle = _fid(fid_ti, FID_ORACLE)  # TI is the candidate: negative = the oracle prompt is better
    # At the integer precision published, seed 1 ties (350 both); unrounded, TI was ahead there by under a point.
    assert oracle.mean_diff == pytest.approx(-778, abs=1) and (oracle.wins, oracle.ties, oracle.n) == (4, 1, 10)
    assert f"{oracle.p_t:.2g}" == "0.038" and f"{oracle.p_perm:.2g}" == "0.066"
    csd = paired_comparison(CSD_TI_0_4, CSD_ORACLE_0_4, direction="higher")
    assert csd.mean_diff == pytest.approx(-0.129, abs=0.001) and csd.wins == 1
