"""notebooks/ccss_exploration.ipynb: committed without outputs, and runs headlessly on a finished run."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.small_project import REPO, shared_trained_project, subprocess_env

NOTEBOOK = REPO / "notebooks" / "ccss_exploration.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the notebook has no code cells"
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, "clear the notebook's outputs"
    assert any("%load_ext kedro.ipython" in "".join(c["source"]) for c in code)
    assert all(c["source"] for c in nb["cells"] if c["cell_type"] == "markdown")


def _kernel_for_this_interpreter(folder: Path) -> str:
    """A kernelspec running the test's own interpreter (JUPYTER_PATH is searched before user kernels)."""
    spec = folder / "kernels" / "ccss-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "ccss-pipeline tests",
                "language": "python",
            }
        )
    )
    return "ccss-test"


@pytest.mark.slow
def test_notebook_executes_on_a_finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    root = shared_trained_project()  # dvc repro of every stage on small data
    target = root / "notebooks" / NOTEBOOK.name
    target.parent.mkdir(exist_ok=True)
    shutil.copy2(NOTEBOOK, target)

    for key, value in subprocess_env().items():  # the kernel inherits this process's environment
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    kernel = _kernel_for_this_interpreter(tmp_path)

    nb = nbformat.read(target, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(target.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # saved PD plots and the redrawn one
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # Kedro's rich display colours the repr
    assert "dnn__ccss" in text and "P(is_click) (dnn__ccss" in text, text[-3000:]  # the column names the label
    assert re.search(r"\(\+1\): wrong steps \d+ of \d+", text), text[-3000:]  # the what-if cell counted its steps
