"""The README's results table: the whole default pipeline over seeds, every backbone, on one data source.

Runs ``kedro run`` (search per backbone, final fits over ``--seeds`` seeds, evaluation) in a throw-away
copy of the project with ``model_training.backbones`` and ``model_training.n_seeds`` set, then collects
the evaluation's ``seed_summary.csv`` and ``paired_differences.csv``.

    python benchmarks/results_table.py --source synthetic [--seeds 5] [--backbones dnn wide_deep deepfm dcn_v2]
    python benchmarks/results_table.py --source kuairand --kuairand-dir ../shared/data/kuairand
    python benchmarks/results_table.py --source adult [--table-rows 6000]    # ../shared/data/adult, subsampled
    python benchmarks/results_table.py --source sparse [--table-rows 6000]   # seeded sparse integer counts

``adult`` and ``sparse`` are small own tables (the ``own_table`` path with an environment written into
the copy): UCI Adult subsampled (seeded) with its known directions (education_num, capital_gain,
hr_per_week +1) and a random stratified split; the seeded table of ``tests/support/sparse_counts.py``
(two sparse directed counts and a price, split by time).

Writes benchmarks/results/results_<source>.json and prints the Markdown table the README shows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine_info  # noqa: E402
from project_copy import add_source_arguments, kedro_run, make_copy, source_options  # noqa: E402


def fmt(mean: float, std: float, pct: bool = False) -> str:
    scale, unit, digits = (100.0, "%", 2) if pct else (1.0, "", 4)
    if pd.isna(mean):
        return "n/a"
    return (
        f"{mean * scale:.{digits}f}{unit} ± {std * scale:.{digits}f}{unit}"
        if pd.notna(std)
        else f"{mean * scale:.{digits}f}{unit}"
    )


def markdown(summary: pd.DataFrame, paired: pd.DataFrame, source: str) -> str:
    """One row per backbone: baseline → CCSS (mean ± std over seeds) and the paired AUC difference."""
    lines = [
        "| data | backbone | AUC baseline → CCSS | ΔAUC (95% CI) | raw-grid wrong steps baseline → CCSS | "
        "edge test wrong baseline → CCSS | rows monotone on the grid (CCSS) |",
        "|---|---|---|---|---|---|---|",
    ]
    for backbone, group in summary.groupby("backbone", sort=False):
        b = group[group.variant == "baseline"].iloc[0]
        c = group[group.variant == "ccss"].iloc[0]
        d = paired[(paired.backbone == backbone) & (paired.metric == "auc")].iloc[0]
        lines.append(
            f"| {source} | {backbone} | {fmt(b.auc_mean, b.auc_std)} → {fmt(c.auc_mean, c.auc_std)} | "
            f"{d['mean']:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}] | "
            f"{fmt(b.wrong_step_share_mean, b.wrong_step_share_std, True)} → "
            f"{fmt(c.wrong_step_share_mean, c.wrong_step_share_std, True)} | "
            f"{fmt(b.edge_wrong_share_mean, b.edge_wrong_share_std, True)} → "
            f"{fmt(c.edge_wrong_share_mean, c.edge_wrong_share_std, True)} | "
            f"{fmt(c.monotone_row_share_mean, c.monotone_row_share_std, True)} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(ap)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--backbones", nargs="+", default=["dnn", "wide_deep", "deepfm", "dcn_v2"])
    ap.add_argument("--keep", type=Path, default=None, help="copy the run's data/08_reporting here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccss-results-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        make_copy(root, args.backbones, args.seeds)
        wall = kedro_run(root, source_options(root, args))
        reporting = root / "data" / "08_reporting"
        summary = pd.read_csv(reporting / "seed_summary.csv")
        paired = pd.read_csv(reporting / "paired_differences.csv")
        best = json.loads((root / "data" / "06_models" / "best_params.json").read_text())
        per_feature = (
            pd.read_csv(reporting / "raw_grid_per_feature.csv")
            .groupby(["backbone", "variant", "feature", "grid"], sort=False)[["wrong_step_share", "edge_wrong_share"]]
            .agg(["mean", "std"])
        )
        per_feature.columns = [f"{m}_{s}" for m, s in per_feature.columns]
        per_feature = per_feature.reset_index()
        if args.keep:
            shutil.copytree(reporting, args.keep, dirs_exist_ok=True)
    table = markdown(summary, paired, args.source)
    print(table)
    print(per_feature.round(5).to_string(index=False))
    out = ROOT / "benchmarks" / "results" / f"results_{args.source}.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "source": args.source,
                "table_rows": args.table_rows if args.source in ("adult", "sparse") else None,
                "seeds": args.seeds,
                "backbones": args.backbones,
                "wall_seconds": wall,
                "best_params": best,
                "seed_summary": summary.to_dict("records"),
                "paired_differences": paired.to_dict("records"),
                "per_feature": per_feature.to_dict("records"),
                "markdown": table,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
