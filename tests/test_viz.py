"""kedro-viz: `kedro viz build` makes a static site that renders the `train` pipeline in headless Chromium.

The site is built in a temporary copy of the project, served from a loopback HTTP server and opened
with Debian's ``chromium``; the rendered DOM must show the train pipeline's nodes, and a screenshot is
kept in test-artifacts/kedro_viz.png (git-ignored) for a human to look at.
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.kedro_project import make_project
from tests.small_project import REPO, run, subprocess_env

CHROMIUM = shutil.which("chromium")
SCREENSHOT = REPO / "test-artifacts" / "kedro_viz.png"
#: Nodes of the `train` pipeline, from the gate to the final fits.
TRAIN_NODES = (
    "validate_raw_source",
    "fit_feature_spec",
    "estimate_shapley_importance",
    "tune_contrastive_loss",
    "train_ccss_and_baseline",
)
EVALUATION_NODE = "evaluate_accuracy_and_monotonicity"  # in __default__, not in train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=8000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=subprocess_env())


def _key(name: str) -> str:
    """Compare raw (`tune_contrastive_loss`), namespaced (`model_training.tune_contrastive_loss`) and
    prettified (`Tune Contrastive Loss`) node names alike."""
    return re.sub(r"[\s_]+", "_", name.strip().lower().rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = make_project(tmp_path_factory.mktemp("viz") / "project")
    run(["kedro", "viz", "build"], root)
    build = root / "build"
    main = json.loads((build / "api" / "main").read_text())
    assert "train" in {p["id"] for p in main["pipelines"]}
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(build)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/?pid=train&expandAllPipelines=true", main
    finally:
        server.shutdown()
        server.server_close()


def test_static_site_renders_the_train_pipeline(site, tmp_path: Path) -> None:
    url, _ = site
    proc = _chromium("--dump-dom", url, profile=tmp_path / "profile")
    dom = proc.stdout
    assert "pipeline-node" in dom, f"kedro-viz did not render a graph\n{proc.stderr[-3000:]}"
    shown = {_key(html.unescape(t)) for t in re.findall(r'class="pipeline-node__text[^"]*"[^>]*>([^<]+)<', dom)}
    missing = [n for n in TRAIN_NODES if _key(n) not in shown]
    assert not missing, f"train-pipeline nodes not drawn: {missing}; drawn: {sorted(shown)}"
    assert _key(EVALUATION_NODE) not in shown  # the train pipeline is the one selected


def test_stages_are_grouped_as_modular_pipelines(site) -> None:
    """Each stage is a namespace, so kedro-viz draws it as one collapsible group."""
    _, main = site
    groups = set(main.get("modular_pipelines", {})) - {"__root__"}
    assert {"data_validation", "feature_engineering", "counterfactual_pairs", "model_training", "evaluation"} <= groups


def test_screenshot_of_the_graph(site, tmp_path: Path) -> None:
    url, _ = site
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    proc = _chromium(
        "--hide-scrollbars", "--window-size=1400,900", f"--screenshot={SCREENSHOT}", url, profile=tmp_path / "profile"
    )
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 20_000, proc.stderr[-3000:]
