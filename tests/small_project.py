"""A small, DVC-enabled copy of the repository in a temporary folder, for the end-to-end tests.

:func:`make_small_project` copies what ``dvc repro`` needs (``conf/``, ``src/`` — the package is installed,
but the stages' code dependencies must exist — ``dvc.yaml``, ``.dvc/config``, ``.dvcignore``,
``.gitignore``, ``pyproject.toml``, ``notebooks/``), shrinks the data and the training budget in the
copied ``conf/base`` files, and makes it a git repository with one commit, so every DVC command works
as in a clone. The DVC remote of ``.dvc/config`` (``../ccss-pipeline-dvc-remote``) then lands next to
the copy, inside the same temporary folder.

:func:`shared_trained_project` gives the test session one such project on which ``dvc repro`` has run,
so the DVC and the notebook tests pay for one small training run, not one each. When the session is to
run one of them (:data:`SHARED_USERS`), tests/conftest.py starts that ``dvc repro`` as soon as the tests
are collected (:func:`start_shared_repro`), to run beside the tests before them (tests/support/background.py).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.kedro_project import LAYERS, REPO
from tests.support import background

STAGES = ("data_validation", "feature_engineering", "counterfactual_pairs", "model_training", "evaluation", "compare")

#: conf/base edits: (file, dotted key path, value). Small data, one backbone, one epoch, one trial; the
#: comparison stage (run three times by tests/test_dvc.py) compares two methods, not six: every method
#: of it is run end to end by tests/pipelines/test_compare_pipeline.py.
SMALL_OVERRIDES: tuple[tuple[str, str, Any], ...] = (
    ("catalog.yml", "raw_source.dataset.n_users", 200),
    ("catalog.yml", "raw_source.dataset.n_videos", 200),
    ("catalog.yml", "raw_source.dataset.n_days", 6),
    ("parameters_model_training.yml", "model_training.backbones", ["dnn"]),
    ("parameters_model_training.yml", "model_training.optimizer.max_epochs", 1),
    ("parameters_model_training.yml", "model_training.optimizer.device", "cpu"),
    ("parameters_model_training.yml", "model_training.search.n_trials", 1),
    ("parameters_model_training.yml", "model_training.n_seeds", 2),
    ("parameters_evaluation.yml", "evaluation.grid_rows", 200),
    ("parameters_evaluation.yml", "evaluation.grid_levels", 50),
    ("parameters_model_training.yml", "model_training.search.max_epochs", 1),
    ("parameters_counterfactual_pairs.yml", "counterfactual_pairs.warmup_epochs", 1),
    ("parameters_counterfactual_pairs.yml", "counterfactual_pairs.shapley.n_samples", 100),
    ("parameters_counterfactual_pairs.yml", "counterfactual_pairs.shapley.n_permutations", 1),
    ("parameters_evaluation.yml", "evaluation.device", "cpu"),
    ("parameters_compare.yml", "compare.n_seeds", 1),
    ("parameters_compare.yml", "compare.n_trials", 1),
    ("parameters_compare.yml", "compare.methods", ["baseline", "ccss"]),
)


def subprocess_env() -> dict[str, str]:
    """The environment for kedro/dvc subprocesses: no telemetry, the running interpreter's scripts first."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.update(
        KEDRO_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="False",
        MPLBACKEND="Agg",
        DVC_NO_ANALYTICS="1",
        PYTHONHASHSEED="0",
    )
    env.pop("KEDRO_ENV", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``cwd``; on failure the assertion message carries the command's output."""
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
            f"\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def set_yaml_value(path: Path, dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a YAML file (comments are lost: only for the temporary copies)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _ignore_noise(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".ipynb_checkpoints") or n.endswith(".egg-info")}


def make_small_project(root: Path) -> Path:
    """A git + DVC repository at ``root`` (created) with the small configuration; nothing has run yet."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("conf", "src", "notebooks"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, root / folder, ignore=_ignore_noise, dirs_exist_ok=True)
    local = root / "conf" / "local"
    if local.is_dir():  # the developer's own overrides must not leak into the test
        shutil.rmtree(local)
    local.mkdir()
    (local / ".gitkeep").touch()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml", "README.md"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, root / name)
    (root / ".dvc").mkdir(exist_ok=True)
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True, exist_ok=True)
        (root / "data" / layer / ".gitkeep").touch()
    for file, key, value in SMALL_OVERRIDES:
        set_yaml_value(root / "conf" / "base" / file, key, value)
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    git_commit(root, "small project")
    return root


def git_commit(root: Path, message: str) -> None:
    run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ],
        root,
    )


def stages_ran(repro_output: str) -> set[str]:
    """Stage names ``dvc repro`` says it ran ("Running stage 'x':")."""
    return {s for s in STAGES if f"Running stage '{s}'" in repro_output}


_SHARED: dict[str, Path] = {}
#: the slow tests that use :func:`shared_trained_project` (node ids start so)
SHARED_USERS = ("tests/test_dvc.py::", "tests/test_notebook.py::")
_REPRO = ["dvc", "repro"]


def start_shared_repro() -> None:
    """Make the shared project and start its first ``dvc repro`` in the background (once)."""
    if "root" not in _SHARED:
        tmp = Path(tempfile.mkdtemp(prefix="ccss-small-"))
        atexit.register(shutil.rmtree, tmp, True)
        _SHARED["root"] = make_small_project(tmp / "ccss-pipeline")
        background.start("shared dvc repro", _REPRO, cwd=_SHARED["root"], env=subprocess_env())


def shared_trained_project() -> Path:
    """One small project per test session on which ``dvc repro`` has run every stage (built on first use,
    or started in the background when the session began).

    Tests may rerun stages in it but must leave every output in place.
    """
    if "first_repro" not in _SHARED:
        start_shared_repro()
        root = _SHARED["root"]
        proc = background.result("shared dvc repro", _REPRO, cwd=root, env=subprocess_env(), timeout=900)
        if proc.returncode != 0:
            raise AssertionError(
                f"dvc repro failed with exit code {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                f"\n--- stderr\n{proc.stderr[-6000:]}"
            )
        _SHARED["first_repro"] = proc.stdout + proc.stderr  # type: ignore[assignment]
    return _SHARED["root"]


def first_repro_log() -> str:
    shared_trained_project()
    return str(_SHARED["first_repro"])
