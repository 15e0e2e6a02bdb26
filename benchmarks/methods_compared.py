"""The "Methods compared" table: every monotonicity method under one protocol on one data source (issue 27).

Runs the data stages (``data_validation``, ``feature_engineering``, ``counterfactual_pairs``) and then
``kedro run --pipelines=compare`` (``ccss_pipeline.tuning.comparison``: the same trial budget for
every tuned row, chosen on validation; ``--seeds`` final fits per row; test AUC, accuracy, LogLoss,
raw-grid wrong steps, edge test, rows monotone, training time against the same family's unconstrained
fit, ΔAUC against the λ = 0 network paired on the seed) in a throw-away copy of the project, then
collects ``methods_compared.csv``, ``methods_compared_seeds.csv`` and ``methods_compared.md``.

    python benchmarks/methods_compared.py --source synthetic [--seeds 5] [--trials 8] [--backbone dnn]
    python benchmarks/methods_compared.py --source kuairand --kuairand-dir ../shared/data/kuairand
    python benchmarks/methods_compared.py --source adult [--table-rows 6000]   # ../shared/data/adult, subsampled

Needs the optional extra ``compare`` (LightGBM, monotonicnetworks). Writes
benchmarks/results/methods_compared_<source>.json and prints the Markdown section.
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
from project_copy import add_source_arguments, kedro_run, make_copy, set_parameters, source_options  # noqa: E402

DATA_STAGES = "data_validation,feature_engineering,counterfactual_pairs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(ap)
    ap.add_argument("--seeds", type=int, default=5, help="final fits per method (compare.n_seeds)")
    ap.add_argument("--trials", type=int, default=None, help="trials per tuned method (default: the search's)")
    ap.add_argument("--backbone", default="dnn", help="the network of the baseline and the soft methods")
    ap.add_argument("--keep", type=Path, default=None, help="copy the run's data/08_reporting here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccss-compare-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        make_copy(root, [args.backbone], args.seeds)
        set_parameters(root, "compare", backbone=args.backbone, n_seeds=args.seeds, n_trials=args.trials)
        options = source_options(root, args)
        data_seconds = kedro_run(root, [*options, f"--pipelines={DATA_STAGES}"])
        compare_seconds = kedro_run(root, [*options, "--pipelines=compare"])
        reporting = root / "data" / "08_reporting"
        summary = pd.read_csv(reporting / "methods_compared.csv")
        seeds = pd.read_csv(reporting / "methods_compared_seeds.csv")
        section = (reporting / "methods_compared.md").read_text()
        if args.keep:
            shutil.copytree(reporting, args.keep, dirs_exist_ok=True)
    print(section)
    out = ROOT / "benchmarks" / "results" / f"methods_compared_{args.source}.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "source": args.source,
                "table_rows": args.table_rows if args.source in ("adult", "sparse") else None,
                "backbone": args.backbone,
                "seeds": args.seeds,
                "trials": args.trials,
                "wall_seconds": {"data_stages": data_seconds, "compare": compare_seconds},
                "summary": summary.to_dict("records"),
                "seeds_table": seeds.to_dict("records"),
                "markdown": section,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {out} (data stages {data_seconds:.0f} s, compare {compare_seconds:.0f} s)")


if __name__ == "__main__":
    main()
