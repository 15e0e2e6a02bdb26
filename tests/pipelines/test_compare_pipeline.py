"""The compare pipeline end to end: `kedro run --pipelines=compare` on a tiny project after its data stages
(a copy of the session's trained project: its data stages and pairs ran with the same settings a fresh
``make_training_project`` has, so the comparison reads exactly what it would read there)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from ccss_pipeline.config import COMPARED_METHODS
from tests.support.trained_project import kedro_cli

pytest.importorskip("lightgbm", reason='LightGBM is in the optional extra "compare": pip install -e ".[compare]"')
pytest.importorskip("monotonicnetworks", reason='the optional extra "compare": pip install -e ".[compare]"')

LOCAL_COMPARE = {"compare": {"n_seeds": 1, "n_trials": 1}}


@pytest.mark.slow
def test_compare_run_writes_the_table_the_seeds_and_the_section(trained_project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(trained_project, root)
    models = root / "data" / "06_models"
    (models / "optuna.db").unlink()  # the training stage's study (checked below: the comparison never writes it)
    assert (
        not (models / "optuna_compare.db").exists()
        and not (root / "data" / "08_reporting" / "methods_compared.csv").exists()
    )
    (root / "conf" / "local" / "parameters_compare.yml").write_text(yaml.safe_dump(LOCAL_COMPARE))
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
