"""dvc.yaml: static checks against the catalog and parameter files, then `dvc repro` end to end.

The end-to-end tests share one small git + DVC copy of the repository (tests/small_project.py) and run
in file order: a full repro from scratch, a no-op repro, a parameter change, a forced rerun, metrics,
and a push/pull round trip through the default local remote.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from tests.small_project import (
    REPO,
    STAGES,
    first_repro_log,
    git_commit,
    run,
    set_yaml_value,
    shared_trained_project,
    stages_ran,
)

METRICS = "data/08_reporting/metrics.json"


def _dvc_yaml() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))


def _entries(items: list) -> dict[str, dict]:
    """``[path, {path: {options}}]`` -> ``{path: options}``."""
    out: dict[str, dict] = {}
    for item in items or []:
        if isinstance(item, str):
            out[item] = {}
        else:
            ((path, opts),) = item.items()
            out[path] = opts if isinstance(opts, dict) else {"keys": opts}
    return out


def _catalog_paths() -> set[str]:
    """Every file/folder path of conf/base/catalog.yml with the {placeholders} of patterns expanded."""
    catalog = yaml.safe_load((REPO / "conf/base/catalog.yml").read_text(encoding="utf-8"))
    fill = {
        "name": ["raw", "split"],
        "split": ["train", "validation", "test"],
        "table": ["monotonicity", "raw_grid"],
        "curve": ["roc", "calibration", "raw_grid"],
        "plot": ["violation_rate", "roc", "calibration"],
    }
    paths: set[str] = set()
    for entry in catalog.values():
        inner = entry.get("dataset", entry)
        if not isinstance(inner, dict):
            continue
        main = inner.get("filepath") or inner.get("path")
        siblings = [main[: -len(".json")] + ".md"] if str(inner.get("type")).endswith("ValidationReportDataset") else []
        for path in filter(None, [main, *siblings]):
            keys = [k for k in fill if "{" + k + "}" in path]
            if not keys:
                paths.add(path)
            for key in keys:
                paths.update(path.replace("{" + key + "}", v) for v in fill[key])
    return paths


def test_one_stage_per_pipeline_running_kedro() -> None:
    stages = _dvc_yaml()["stages"]
    assert list(stages) == list(STAGES)
    for name, stage in stages.items():
        assert stage["cmd"] == f"kedro run --pipelines={name}"
        assert f"src/ccss_pipeline/pipelines/{name}" in _entries(stage["deps"])


def test_deps_exist_and_params_name_keys_of_the_kedro_files() -> None:
    for name, stage in _dvc_yaml()["stages"].items():
        for dep in _entries(stage["deps"]):
            if not dep.startswith("data/"):
                assert (REPO / dep).exists(), f"{name}: dependency {dep} does not exist"
        for file, opts in _entries(stage["params"]).items():
            assert file.startswith("conf/base/"), file
            content = yaml.safe_load((REPO / file).read_text(encoding="utf-8"))
            for dotted in opts["keys"]:
                node = content
                for key in dotted.split("."):
                    assert isinstance(node, dict) and key in node, f"{name}: {file} has no key {dotted}"
                    node = node[key]
    params = _entries(_dvc_yaml()["stages"]["data_validation"]["params"])
    assert "raw_source" in params["conf/base/catalog.yml"]["keys"]  # the generator settings
    assert params["conf/base/parameters_schema.yml"]["keys"] == ["schema"]


def _stage_pipeline(stage: dict) -> str | None:
    cmd = stage.get("cmd", "")
    return cmd.split("--pipelines=")[1].split()[0] if "--pipelines=" in cmd else None


def test_code_deps_cover_each_stages_import_closure() -> None:
    """Every project module a stage's pipeline imports, directly or not (grimp's import graph), is a
    dep of that stage (the file or a folder holding it): else `dvc repro` misses a change to it."""
    import grimp

    graph = grimp.build_graph("ccss_pipeline")
    gaps: dict[str, list[str]] = {}
    for name, stage in _dvc_yaml()["stages"].items():
        pipeline = _stage_pipeline(stage)
        if pipeline is None:
            continue
        package = f"ccss_pipeline.pipelines.{pipeline}"
        modules = graph.find_upstream_modules(package, as_package=True) | graph.find_descendants(package) | {package}
        deps = [d.rstrip("/") for d in _entries(stage.get("deps"))]
        for module in sorted(m for m in modules if m.split(".")[0] == "ccss_pipeline"):
            base = REPO / "src" / module.replace(".", "/")
            file = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
            rel = file.relative_to(REPO).as_posix()
            if not any(rel == d or rel.startswith(d + "/") for d in deps):
                gaps.setdefault(name, []).append(rel)
    assert not gaps, f"dvc.yaml stage deps miss modules their pipelines import: {gaps}"


def test_outs_are_catalog_paths_and_data_deps_are_upstream_outs() -> None:
    catalog = _catalog_paths()
    stages = _dvc_yaml()["stages"]
    produced: set[str] = set()
    for name, stage in stages.items():
        for dep in _entries(stage["deps"]):
            if dep.startswith("data/"):
                assert dep in produced, f"{name} depends on {dep}, which no earlier stage writes"
        outs = {**_entries(stage.get("outs")), **_entries(stage.get("metrics")), **_entries(stage.get("plots"))}
        for out in outs:
            in_catalog = out in catalog or any(p.startswith(out + "/") for p in catalog)  # a folder of them
            studies = ("data/06_models/optuna.db", "data/06_models/optuna_compare.db", "data/06_models/checkpoints")
            assert in_catalog or out in studies, out
        produced |= set(outs)
    evaluation = stages["evaluation"]
    assert _entries(evaluation["metrics"]) == {METRICS: {"cache": False}}
    assert all(opts["cache"] is False for opts in _entries(evaluation["plots"]).values())
    training = _entries(stages["model_training"]["outs"])
    assert training["data/06_models/optuna.db"] == {"persist": True}
    # the comparison resumes its own studies; it never writes the training stage's study file
    assert _entries(stages["compare"]["outs"])["data/06_models/optuna_compare.db"] == {"persist": True}


def test_dvc_config_is_committable() -> None:
    config = (REPO / ".dvc" / "config").read_text()
    assert "analytics = false" in config
    assert "url = ../../ccss-pipeline-dvc-remote" in config  # relative to .dvc/: the repository's sibling
    assert (REPO / ".dvcignore").is_file()


# ------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_repro_from_scratch_runs_every_stage() -> None:
    root = shared_trained_project()
    assert stages_ran(first_repro_log()) == set(STAGES)
    assert (root / "dvc.lock").is_file()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    for path in (METRICS, "data/06_models/trained", "data/06_models/optuna.db", "data/08_reporting/roc.csv"):
        assert (root / path).exists(), path
    git_commit_all(root, "first repro")


@pytest.mark.slow
def test_second_repro_runs_nothing() -> None:
    root = shared_trained_project()
    proc = run(["dvc", "repro"], root)
    out = proc.stdout + proc.stderr
    assert stages_ran(out) == set(), out
    assert "Data and pipelines are up to date" in out
    assert "up to date" in run(["dvc", "status"], root).stdout


@pytest.mark.slow
def test_margin_change_reruns_only_model_training_evaluation_and_compare() -> None:
    root = shared_trained_project()
    params = root / "conf/base/parameters_model_training.yml"
    set_yaml_value(params, "model_training.contrastive.margin", 0.05)
    diff = json.loads(run(["dvc", "params", "diff", "--json"], root).stdout)
    change = diff[str(params.relative_to(root))]["model_training.contrastive.margin"]
    assert (change["old"], change["new"]) == (0.02, 0.05)
    status = json.loads(run(["dvc", "status", "--json"], root).stdout)
    assert set(status) == {"model_training", "compare"}, status  # both read model_training.contrastive
    proc = run(["dvc", "repro"], root)
    out = proc.stdout + proc.stderr
    ran = stages_ran(out)
    # The study name hashes the search configuration but not the margin default (the search overrides
    # it), so the persisted study is reused; evaluation reruns when the retrained model files changed.
    assert {"model_training", "compare"} <= ran <= {"model_training", "evaluation", "compare"}, out
    for stage in ("data_validation", "feature_engineering", "counterfactual_pairs"):
        assert f"Stage '{stage}' didn't change, skipping" in out
    assert "up to date" in run(["dvc", "status"], root).stdout
    git_commit_all(root, "margin 0.05")


@pytest.mark.slow
def test_forced_rerun_gives_identical_metrics() -> None:
    root = shared_trained_project()
    run(["dvc", "repro"], root)  # up to date whatever ran before
    before = json.loads((root / METRICS).read_text())
    proc = run(["dvc", "repro", "--force"], root)  # every stage again, generator included
    assert stages_ran(proc.stdout + proc.stderr) == set(STAGES)
    after = json.loads((root / METRICS).read_text())
    assert after == before  # exact: CPU training is deterministic
    assert not (run(["git", "status", "--porcelain", "--", METRICS], root).stdout.strip())


@pytest.mark.slow
def test_metrics_show_prints_the_metrics() -> None:
    root = shared_trained_project()
    metrics = json.loads((root / METRICS).read_text())
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], root).stdout)
    data = next(v for v in shown.values() if "data" in v)["data"][METRICS]["data"]
    assert data == metrics
    table = run(["dvc", "metrics", "show"], root).stdout
    assert METRICS in table and "dnn__ccss.auc" in table


@pytest.mark.slow
def test_push_and_pull_through_the_default_local_remote() -> None:
    root = shared_trained_project()
    run(["dvc", "push"], root)
    remote = root.parent / "ccss-pipeline-dvc-remote"
    assert remote.is_dir() and any(remote.rglob("*"))
    trained = root / "data/06_models/trained"
    shutil.rmtree(trained)
    shutil.rmtree(root / ".dvc" / "cache")
    run(["dvc", "pull"], root)
    assert (trained / "dnn__ccss__seed42" / "model.pt").is_file()
    assert "up to date" in run(["dvc", "status"], root).stdout


def git_commit_all(root, message: str) -> None:
    run(["git", "add", "-A"], root)
    git_commit(root, message)


def test_plots_show_draws_one_line_per_model(tmp_path) -> None:
    """`dvc plots show` on the committed plot data: every CSV stacks several models' curves, and each
    is drawn as a line of its own (colour and line grouping by `model`; per-feature curves in panels),
    not one zig-zag line through all of them. The HTML renders."""
    proc = run(["dvc", "plots", "show", "--json"], cwd=REPO)
    plots = json.loads(proc.stdout)["data"]
    assert set(plots) == {
        f"data/08_reporting/{n}.csv" for n in ("roc", "calibration", "partial_dependence", "raw_grid")
    }
    for name, (rendered, *_) in plots.items():
        content = rendered["content"]
        spec = content.get("spec", content)
        assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["detail"]["field"] == "model", name
        models = {row["model"] for row in content["data"]["values"]}
        assert len(models) >= 2, name
        if "partial_dependence" in name or "raw_grid" in name:
            assert content["facet"]["field"] == "feature", name
    roc = plots["data/08_reporting/roc.csv"][0]["content"]["data"]["values"]
    for model in {r["model"] for r in roc}:
        fpr = [float(r["fpr"]) for r in roc if r["model"] == model]
        assert fpr == sorted(fpr) and fpr[0] == 0.0 and fpr[-1] == 1.0, model  # one whole curve per model
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], cwd=REPO)
    assert "vega" in (tmp_path / "plots" / "index.html").read_text()
