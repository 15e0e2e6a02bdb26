"""The model card on small hand-built inputs: features and directions, the lineage against a dvc.lock
fixture (matches / differs / folder), no git, and an HTML page whose images are all data URIs."""

from __future__ import annotations

import base64
import hashlib
import html as html_module
import io
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.datasets.lineage import ProjectLineageDataset
from ccss_pipeline.evaluation.card_lineage import (
    FOLDER,
    MATCHES,
    ArtifactRecord,
    Lineage,
    artifact_records,
    split_time_ranges,
)
from ccss_pipeline.evaluation.findings import ModelResult
from ccss_pipeline.evaluation.model_card import ModelCardContext, render_model_card
from ccss_pipeline.evaluation.plots import ONE_BUCKET_NOTE
from ccss_pipeline.evaluation.presentation import PNG_SIGNATURE, PlotRef
from ccss_pipeline.evaluation.seeds import paired_difference, summarize_over_seeds
from ccss_pipeline.spec import CategoricalFeature, FeatureSpec, NumericalFeature
from tests.evaluation.conftest import _numerical

BACKBONES = ("dnn", "dcn_v2")
SEEDS = (0, 1, 2)
METRICS = ("auc", "gauc", "logloss", "brier", "wrong_step_share", "edge_wrong_share", "monotone_row_share")
TRAIN = "data/05_model_input/train.parquet"
TEST = "data/05_model_input/test.parquet"
SPEC_JSON = "data/04_feature/feature_spec.json"
TRAINED = "data/06_models/trained"
ARTIFACTS = [TRAIN, TEST, SPEC_JSON, TRAINED]


def _card_spec() -> FeatureSpec:
    flat = NumericalFeature(name="flat", direction=1, transform="identity", mean=3.0, std=1.0, boundaries=[],
                            centres=[3.0], centres_dense=[0.0], quantiles=[3.0, 3.0])  # fmt: skip
    return FeatureSpec(
        categorical=[CategoricalFeature(name="region", vocab_size=4)],
        numerical=[_numerical("prior_ctr", +1, 8), _numerical("wait_days", -1, 6), flat, _numerical("noise", 0, 4)],
        source="unit-test table",
        label_name="defaulted",
    )


def _seed_frame() -> pd.DataFrame:
    rows = []
    for b, backbone in enumerate(BACKBONES):
        for variant in ("baseline", "ccss"):
            for seed in SEEDS:
                ccss = variant == "ccss"
                rows.append({"backbone": backbone, "variant": variant, "seed": seed,
                             "auc": 0.75 + b / 100 + seed / 1000 - (0.002 if ccss else 0), "gauc": 0.70 + seed / 1000,
                             "logloss": 0.5, "brier": 0.2, "wrong_step_share": 0.001 if ccss else 0.05,
                             "edge_wrong_share": 0.01 if ccss else 0.4, "monotone_row_share": 0.9 if ccss else 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def _per_feature(spec: FeatureSpec) -> pd.DataFrame:
    rows = []
    for backbone in BACKBONES:
        for variant in ("baseline", "ccss"):
            for seed in SEEDS:
                for i, f in enumerate(spec.directed):
                    rows.append({"backbone": backbone, "variant": variant, "seed": seed, "feature": f.name,
                                 "wrong_step_share": (0.0012 if variant == "ccss" else 0.07) * (i + 1),
                                 "edge_wrong_share": 0.02 if variant == "ccss" else 0.45})  # fmt: skip
    return pd.DataFrame(rows)


def _png(text: str) -> bytes:
    fig = Figure(figsize=(2, 1))
    fig.text(0.1, 0.5, text)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _params(backbone: str) -> dict:
    return {"loss": "margin", "weight": 2.5 if backbone == "dnn" else 0.75, "margin": 0.03, "temperature": 0.1,
            "learning_rate": 0.002, "source": f"trial {len(backbone)}", "val_auc": 0.7412, "val_wrong_step_share": 0.002,
            "feasible": True, "max_violation": 0.005, "study": f"ccss-{backbone}-abc", "n_trials": 8}  # fmt: skip


def _context(spec: FeatureSpec | None = None, lineage: Lineage | None = None, images: bool = True,
             **kw) -> ModelCardContext:  # fmt: skip
    spec = spec or _card_spec()
    frame = _seed_frame()
    summary = summarize_over_seeds(frame, ["backbone", "variant"], list(METRICS))
    paired = pd.concat([paired_difference(frame, m) for m in METRICS], ignore_index=True)
    measurable = [f for f in spec.directed if f.n_buckets > 1]
    plots = [PlotRef(f"plots/raw_grid/ice_{b}_{f.name}.png", f"{f.name} ({b})", b, _png(f"{b} {f.name}") if images else None)
             for b in BACKBONES for f in measurable]  # fmt: skip
    args = dict(
        spec=spec, backbones=list(BACKBONES), results=ModelResult.from_summary(summary),
        paired=paired.drop(columns=["seeds", "differences"], errors="ignore"), per_feature=_per_feature(spec),
        chosen_params={b: _params(b) for b in BACKBONES}, split=SplitConfig(mode="time"),
        time_ranges=split_time_ranges({"train": [1_650_000_000_000, 1_650_500_000_000],
                                       "test": [1_651_000_000_000, 1_651_100_000_000]}),
        rows_per_split={"train": 800, "validation": 100, "test": 100},
        method={"grid_levels": 50, "grid_rows": 200, "eps": 1e-6, "threshold": 0.5},
        plots=plots, lineage=lineage or Lineage(params_hash="0123456789abcdef"),
    )  # fmt: skip
    return ModelCardContext(**{**args, **kw})


def _rows(md: str, first_cell: str) -> list[list[str]]:
    """The cells of every Markdown table row whose first cell is ``first_cell``."""
    out = []
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if cells[0] == first_cell:
                out.append(cells)
    return out


# ----------------------------------------------------------------------------------------- content


def test_card_names_every_directed_feature_with_its_direction():
    spec = _card_spec()
    md, html = render_model_card(_context(spec))
    for f in spec.directed:
        (row,) = [r for r in _rows(md, f.name) if len(r) == 5]  # the features table
        assert row[1] == f"{f.direction:+d}" and row[2] == str(f.n_buckets), row
        assert row[4] == ("yes" if f.n_buckets > 1 else f"no — {ONE_BUCKET_NOTE}"), row
        assert f.name in html
    assert "Not constrained: flat" in md
    assert (
        "without a declared direction (no constraint): noise" in md
        and "Categorical features (no direction): region" in md
    )
    # per backbone, the per-feature raw-grid figures name each directed feature with its direction
    for backbone in BACKBONES:
        assert f"## Backbone: {backbone}" in md
    assert len(_rows(md, "prior_ctr (+1)")) == len(BACKBONES) and len(_rows(md, "wait_days (-1)")) == len(BACKBONES)
    assert all(r[1] == ONE_BUCKET_NOTE for r in _rows(md, "flat (+1)"))
    # the training range over which monotonicity was measured, and nothing claimed outside it
    assert "outside a feature's training range" in md
    assert _rows(md, "prior_ctr")[0][1:] == [
        "+1",
        f"{spec.numerical[0].quantiles[0]:.6g}",
        f"{spec.numerical[0].quantiles[-1]:.6g}",
    ]


def test_card_accuracy_monotonicity_parameters_and_split():
    md, _ = render_model_card(_context())
    summary = summarize_over_seeds(_seed_frame(), ["backbone", "variant"], list(METRICS)).set_index(
        ["backbone", "variant"]
    )
    ccss = summary.loc[("dnn", "ccss")]
    (auc,) = _rows(md, "AUC")[:1]
    assert auc[1] == f"{ccss['auc_mean']:.4f} ± {ccss['auc_std']:.4f}"  # CCSS first, then its baseline
    for label in (
        "GAUC",
        "LogLoss",
        "Brier score",
        "raw-grid wrong-step share (pooled)",
        "edge test: rows moving the wrong way",
    ):
        assert len(_rows(md, label)) == len(BACKBONES), label
    assert md.count("ΔAUC (CCSS − baseline, paired on the training seed, 3 pairs): -0.0020, 95% interval [") == 2
    assert [r[1] for r in _rows(md, "λ (contrastive weight)")] == ["2.5", "0.75"]
    assert [r[1] for r in _rows(md, "source trial")] == ["trial 3", "trial 6"]
    assert _rows(md, "validation AUC")[0][1] == "0.7412" and _rows(md, "feasible (target met)")[0][1] == "yes"
    assert "Split mode: time" in md and "train 2022-04-15 05:20:00 UTC → 2022-04-21 00:13:20 UTC" in md
    assert "label is 'defaulted'" in md and "Source: unit-test table" in md
    assert [r[1] for r in _rows(md, "train")] == ["800"]


def test_card_without_timestamp_states_no_time_range():
    md, _ = render_model_card(_context(split=SplitConfig(mode="random"), time_ranges={}))
    assert "Split mode: random" in md and "no timestamp" in md and "UTC" not in md


# ----------------------------------------------------------------------------------------- lineage


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A project folder (not a git repository) with a dvc.lock fixture: train.parquet as recorded, test.parquet
    changed after it was recorded, the spec missing, the trained folder recorded as a DVC folder hash."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # never find a repository above it
    root = tmp_path / "project"
    for rel, data in ((TRAIN, b"train bytes"), (TEST, b"test bytes, rewritten by a later kedro run")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / TRAINED / "dnn__ccss__seed0").mkdir(parents=True)
    lock = {"schema": "2.0", "stages": {
        "feature_engineering": {"cmd": "kedro run --pipelines=feature_engineering", "outs": [
            {"path": TRAIN, "hash": "md5", "md5": _md5(b"train bytes"), "size": 11},
            {"path": TEST, "hash": "md5", "md5": _md5(b"test bytes"), "size": 10},
            {"path": SPEC_JSON, "hash": "md5", "md5": "0" * 32, "size": 2}]},
        "model_training": {"cmd": "kedro run --pipelines=model_training",
                           "deps": [{"path": TRAIN, "hash": "md5", "md5": "f" * 32}],  # a dependency is not the record
                           "outs": [{"path": TRAINED, "hash": "md5", "md5": "abc123.dir", "size": 5, "nfiles": 3}]},
    }}  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    return root


def test_lineage_md5_equals_dvc_lock_and_says_whether_the_file_matches(project):
    loaded = ProjectLineageDataset(str(project), env="own_table", artifacts=ARTIFACTS).load()
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    records = {r.path: r for r in artifact_records(loaded["dvc_lock"], loaded["artifacts"])}
    assert records[TRAIN].locked_md5 == lock["stages"]["feature_engineering"]["outs"][0]["md5"]
    assert records[TRAIN].stage == "feature_engineering" and records[TRAIN].status == MATCHES
    assert records[TEST].status.startswith("differs") and records[TEST].current_md5 == _md5(
        (project / TEST).read_bytes()
    )
    assert records[SPEC_JSON].status == "differs — the file is missing"
    assert records[TRAINED].status == FOLDER and records[TRAINED].stage == "model_training"

    md, html = render_model_card(_context(lineage=Lineage.from_loaded(loaded, params_hash="feedbeef")))
    train_rows = _rows(md, TRAIN)
    assert len(train_rows) == 2  # the training-data section and the lineage
    for row in train_rows:
        assert row == [TRAIN, "feature_engineering", _md5(b"train bytes"), MATCHES]
    for row in _rows(md, TEST):
        assert row[2] == _md5(b"test bytes") and row[3].startswith("differs")
    (trained,) = _rows(md, TRAINED)
    assert trained[2] == "abc123.dir (3 files)" and trained[3] == FOLDER
    assert "Kedro environment: own_table" in md and "feedbeef" in md
    assert "kedro run --env own_table" in md  # dvc.yaml runs the base environment
    assert "Some artifacts differ from dvc.lock" in md
    for text in (md, html):
        assert _md5(b"train bytes") in text and "dvc pull" in text and "dvc repro" in text


def test_no_git_gives_unknown_without_crashing(project, monkeypatch):
    loaded = ProjectLineageDataset(str(project)).load()  # not a repository
    assert loaded["git_commit"] == "unknown" and loaded["git_dirty"] is None and loaded["env"] == "base"
    monkeypatch.setenv("PATH", str(project / "no-bin-here"))  # no git executable at all
    loaded = ProjectLineageDataset(str(project)).load()
    assert loaded["git_commit"] == "unknown" and loaded["git_dirty"] is None
    md, html = render_model_card(_context(lineage=Lineage.from_loaded(loaded)))
    assert "Git commit: unknown" in md and "git checkout <commit: unknown>" in md
    assert "git checkout &lt;commit: unknown&gt;" in html
    # no dvc.lock either: the card says so instead of showing a hash
    (project / "dvc.lock").unlink()
    md, _ = render_model_card(_context(lineage=Lineage.from_loaded(ProjectLineageDataset(str(project)).load())))
    assert "no dvc.lock was found" in md and "Git commit: unknown" in md


def test_git_commit_and_dirty_tree(project):
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=project,
                              check=True, capture_output=True, text=True).stdout  # fmt: skip

    git("init", "-q")
    (project / ".gitignore").write_text("data/\n")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD").strip()
    loaded = ProjectLineageDataset(str(project)).load()
    assert loaded["git_commit"] == head and loaded["git_dirty"] is False
    md, _ = render_model_card(_context(lineage=Lineage.from_loaded(loaded)))
    assert f"{head} (working tree clean)" in md and f"git checkout {head}" in md
    (project / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    loaded = ProjectLineageDataset(str(project)).load()
    assert loaded["git_dirty"] is True and loaded["git_dirty_paths"] == ["dvc.lock"]
    md, _ = render_model_card(_context(lineage=Lineage.from_loaded(loaded)))
    assert "working tree DIRTY: uncommitted changes in dvc.lock" in md


def test_artifact_status_without_a_lock_entry():
    assert ArtifactRecord(TRAIN, kind="file", current_md5="x").status == "not in dvc.lock"
    assert artifact_records(None, {TRAIN: {"kind": "file", "md5": "x"}})[0].locked_md5 is None


# --------------------------------------------------------------------------------------------- HTML


def test_html_images_are_data_uris_only():
    ctx = _context()
    md, html = render_model_card(ctx)
    sources = re.findall(r"<img\s[^>]*src=\"([^\"]*)\"", html)
    assert html.count("<img") == len(sources) == len(ctx.plots) == 2 * len(BACKBONES)
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    for p in ctx.plots:  # the Markdown links the relative path, in its backbone's section
        assert f"]({p.path})" in md
        assert md.index(f"## Backbone: {p.section}") < md.index(f"]({p.path})")
    assert "## Backbone: dcn_v2" not in md[: md.index("](plots/raw_grid/ice_dnn_wait_days.png)")]
    # without bytes a figure is named, never linked
    _, bare = render_model_card(_context(images=False))
    assert "<img" not in bare and "Image not embedded: plots/raw_grid/ice_dnn_prior_ctr.png" in bare
    assert bare.lstrip().lower().startswith("<!doctype html") and "<pre><code>git checkout" in bare


def test_html_escapes_feature_and_source_names():
    odd = "days<since>&|x"
    spec = FeatureSpec(categorical=[CategoricalFeature(name="re<gion>", vocab_size=4)],
                       numerical=[_numerical(odd, -1, 5), _numerical("prior_ctr", +1, 8)],
                       source="loans <2024> & co", label_name="defaulted")  # fmt: skip
    md, page = render_model_card(_context(spec))
    assert f"| {odd.replace('|', chr(92) + '|')} | -1 | 5 | identity | yes |" in md  # the cell escapes its pipe
    assert (
        "Categorical features (no direction): re<gion>." in md
        and "# Model card — CCSS models on loans <2024> & co" in md
    )
    assert "re<gion>" not in page and "days<since>" not in page and "<2024>" not in page
    assert "<td>days&lt;since&gt;&amp;|x</td>" in page and "<td>days&lt;since&gt;&amp;|x (-1)</td>" in page
    assert "<h1>Model card — CCSS models on loans &lt;2024&gt; &amp; co</h1>" in page


def test_card_markdown_and_html_have_the_same_headings():
    md, page = render_model_card(_context())
    md_headings = [(len(h), t) for h, t in re.findall(r"^(#+) (.*)$", md, flags=re.M) if not t.startswith("!")]
    html_headings = [(int(n), html_module.unescape(t)) for n, t in re.findall(r"<h(\d)>(.*?)</h\d>", page)]
    assert md_headings == html_headings and len(md_headings) > 10
    for item in re.findall(r"^- (.*)$", md, flags=re.M):  # the bullet lists
        assert f"<li>{html_module.escape(item, quote=False)}</li>" in page.replace("&#39;", "'")
