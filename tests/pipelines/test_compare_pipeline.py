"""The compare pipeline end to end: `kedro run --pipelines=compare` on a tiny project after its data stages."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import COMPARED_METHODS
from tests.support.trained_project import kedro_cli, make_training_project

pytest.importorskip("lightgbm", reason='LightGBM is in the optional extra "compare": pip install -e ".[compare]"')
pytest.importorskip("monotonicnetworks", reason='the optional extra "compare": pip install -e ".[compare]"')

LOCAL_COMPARE = {"compare": {"n_seeds": 1, "n_trials": 1}}


@pytest.mark.slow
def test_compare_run_writes_the_table_the_seeds_and_the_section(tmp_path):
    root = make_training_project(tmp_path / "project")
    (root / "conf" / "local" / "parameters_compare.yml").write_text(yaml.safe_dump(LOCAL_COMPARE))
    kedro_cli(root, "--pipelines=data_validation,feature_engineering,counterfactual_pairs")
    kedro_cli(root, "--pipelines=compare")
    reporting = root / "data" / "08_reporting"
    summary = pd.read_csv(reporting / "methods_compared.csv")
    seeds = pd.read_csv(reporting / "methods_compared_seeds.csv")
    markdown = (reporting / "methods_compared.md").read_text()
    assert list(summary["method"]) == list(COMPARED_METHODS) == list(seeds["method"])
    assert (summary.set_index("method").loc[["monotone_net", "gbdt"], "wrong_step_share_mean"] == 0).all()
    assert markdown.startswith("## Methods compared") and all(f"(`{m}`)" in markdown for m in COMPARED_METHODS)
    # the comparison's studies live in their own file, never in the training stage's DVC output
    assert (root / "data" / "06_models" / "optuna_compare.db").is_file()
    assert not (root / "data" / "06_models" / "optuna.db").exists()
