from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ccss_pipeline.evaluation.monotonicity import monotonicity_report
from ccss_pipeline.evaluation.report import ModelResult, PlotRef, ReportContext, render_report, verdict_sentence


def _per_feature(compliance_up, compliance_down):
    return pd.DataFrame(
        {
            "feature": ["video_hist_ctr", "days<since>"],
            "direction": [1, -1],
            "violation_rate": [1 - compliance_up, 1 - compliance_down],
            "compliance": [compliance_up, compliance_down],
            "rows_with_violation": [0.1, 0.2],
            "ice_monotone_share": [0.9, 0.8],
            "mean_violating_mass": [0.01, 0.02],
            "pd_spearman": [0.9, -0.7],
            "pd_direction_ok": [True, True],
            "n_pairs": [100, 100],
        }
    )


def _result(backbone, variant, auc, up, down, oracle=True):
    acc = {"auc": auc, "gauc": auc - 0.05, "logloss": 0.45}
    if oracle:
        acc["oracle_auc"] = 0.8123
    pooled = {"violation_rate": 1 - (up + down) / 2, "compliance": (up + down) / 2, "ice_monotone_share": 0.85,
              "rows_with_violation": 0.15, "pd_direction_ok_share": 1.0}
    return ModelResult(backbone, variant, acc, pooled, _per_feature(up, down), direction_agreement=1.0)


@pytest.fixture
def context():
    return ReportContext(
        title="CCSS evaluation <synthetic>",
        source="synthetic generator (seed 0) & friends",
        rows_per_split={"train": 8000, "valid": 1000, "test": 1000},
        directed_features={"video_hist_ctr": 1, "days<since>": -1},
        backbones=["dnn", "dcn"],
        results=[
            _result("dnn", "ccss", 0.7712, 0.998, 0.9871),
            _result("dnn", "baseline", 0.7705, 0.712, 0.65),
            _result("dcn", "baseline", 0.7801, 0.5, 0.6),
            _result("dcn", "CCSS", 0.7799, 0.99, 1.0),
        ],
        chosen_params={"*": {"lambda": 0.5, "margin": 0.01}, "dcn": {"lambda": 1.0, "loss": "hinge", "tau": 0.1}},
        plots=[PlotRef("plots/pd video_hist_ctr.png", "PD of video_hist_ctr"), PlotRef("plots/roc.png", "ROC")],
    )


def test_verdict_sentence_format():
    assert verdict_sentence("video_hist_ctr", 1, 0.998, 0.712) == (
        "video_hist_ctr (+1): monotone in 99.8% of neighbour moves with CCSS, baseline 71.2%"
    )
    assert verdict_sentence("age", -1, 1.0, None) == "age (-1): monotone in 100.0% of neighbour moves with CCSS, baseline n/a"


def test_markdown_content(context):
    md, _ = render_report(context)
    assert md.startswith("# CCSS evaluation <synthetic>")
    assert "video_hist_ctr (+1): monotone in 99.8% of neighbour moves with CCSS, baseline 71.2%" in md
    assert "days<since> (-1): monotone in 98.7% of neighbour moves with CCSS, baseline 65.0%" in md
    assert "video_hist_ctr (+1): monotone in 99.0% of neighbour moves with CCSS, baseline 50.0%" in md  # dcn
    for name in context.directed_features:
        assert name in md
    assert "| dnn | baseline | 0.7705 |" in md and "| dnn | CCSS | 0.7712 |" in md
    assert md.index("| dnn | baseline |") < md.index("| dnn | CCSS |") < md.index("| dcn | baseline |")
    assert "oracle AUC" in md and "0.8123" in md
    assert "| dcn | 1 | 0.01 | hinge | 0.1 |" in md  # backbone override merged with "*"
    assert "| dnn | 0.5 | 0.01 | — | — |" in md
    assert "![PD of video_hist_ctr](<plots/pd video_hist_ctr.png>)" in md
    assert "![ROC](plots/roc.png)" in md
    assert "8,000" in md
    assert "Δ +0.0007" in md  # dnn AUC difference in the summary
    # every table row has the header's column count
    for table in re.findall(r"(?:^\|.*\|\n)+", md, flags=re.M):
        counts = {line.count(" | ") for line in table.strip().splitlines() if not line.startswith("|---")}
        assert len(counts) == 1


def test_html_escaped_and_complete(context):
    _, page = render_report(context)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and page.rstrip().endswith("</html>")
    assert "<h1>CCSS evaluation &lt;synthetic&gt;</h1>" in page
    assert "days&lt;since&gt; (-1): monotone in 98.7% of neighbour moves with CCSS, baseline 65.0%" in page
    assert "days<since>" not in page
    assert "synthetic generator (seed 0) &amp; friends" in page
    assert "<li>video_hist_ctr (+1): monotone in 99.8% of neighbour moves with CCSS, baseline 71.2%</li>" in page
    assert '<img src="plots/pd video_hist_ctr.png" alt="PD of video_hist_ctr">' in page
    assert page.count("<table>") == page.count("</table>") >= 4


def test_from_dict_and_real_results(spec, inputs):
    def good(cat, dense, bucket):
        return 1 / (1 + np.exp(-(dense[:, 0] - dense[:, 1])))

    def bad(cat, dense, bucket):
        return 1 / (1 + np.exp(-(np.sin(4 * dense[:, 0]) - dense[:, 1])))

    acc = {"auc": 0.7, "gauc": 0.65, "logloss": 0.5}
    ccss, base = monotonicity_report(good, inputs, spec), monotonicity_report(bad, inputs, spec)
    ctx = {
        "title": "t",
        "source": "unit",
        "rows_per_split": {"test": len(inputs)},
        "directed_features": {f.name: f.direction for f in spec.directed},
        "backbones": ["dnn"],
        "results": [ModelResult.from_outputs("dnn", "baseline", acc, base), ModelResult.from_outputs("dnn", "ccss", acc, ccss)],
        "plots": [("a.png", "A")],
    }
    md, page = render_report(ctx)
    comp = base.per_feature.set_index("feature")["compliance"]
    expected = f"up_feat (+1): monotone in 100.0% of neighbour moves with CCSS, baseline {100 * comp['up_feat']:.1f}%"
    assert comp["up_feat"] < 0.95
    assert expected in md and expected in page
    assert "down_feat (-1)" in md and "Backbone dnn" not in md  # single backbone: no sub-heading
    assert "oracle AUC" not in md
    with pytest.raises(KeyError):
        render_report({**ctx, "bogus": 1})
