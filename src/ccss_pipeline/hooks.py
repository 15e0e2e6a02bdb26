"""Project hooks: every parameter is validated, and every stale input refused, before any work starts.

Kedro validates only the parameters of the pipelines being run, so a bad key would surface hours later:
:class:`ConfigurationCheckHooks` validates every known top-level key as soon as the context exists, raising one
:class:`ConfigurationError` that names, per problem, the parameters file, the key path, the bad value and the rule.
Before a node runs, :class:`SpecCheckHooks` refuses an input built for another feature spec and
:class:`PairMoveCheckHooks` pairs of another move. :class:`ProjectLockHooks`: one run at a time; :class:`SparkHooks`.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl
from pydantic import BaseModel, ValidationError

from ccss_pipeline.config import (
    CompareConfig,
    EvaluationConfig,
    FeatureConfig,
    PairsConfig,
    SchemaConfig,
    TrainingConfig,
    ValidationConfig,
)
from ccss_pipeline.lineage import require_spec, require_table_spec
from ccss_pipeline.run_lock import SEARCH_PIPELINE, ProjectLock
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, TIME_COLUMN

logger = logging.getLogger(__name__)

#: Top-level parameter key -> its typed model.
PARAMETER_MODELS: dict[str, type[BaseModel]] = {
    "schema": SchemaConfig,
    "data_validation": ValidationConfig,
    "feature_engineering": FeatureConfig,
    "counterfactual_pairs": PairsConfig,
    "model_training": TrainingConfig,
    "evaluation": EvaluationConfig,
    "compare": CompareConfig,  # kedro run --pipelines=compare
}

#: Columns of the canonical interaction table; a schema feature may not reuse these names.
CANONICAL_COLUMNS = ("user", "item", LABEL_COLUMN, TIME_COLUMN, GROUP_COLUMN, ORACLE_COLUMN)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


class _WholeGroup:
    """The bad value of a rule that spans several keys (a model-level check): the message names them."""


_WHOLE_GROUP = _WholeGroup()


class ConfigurationError(ValueError):
    """The parameters are invalid; the message names file, key path, bad value and allowed values."""


# ------------------------------------------------------------------------------------ file lookup
def _parameter_files(conf_root: Path, env_dirs: list[str]) -> list[Path]:
    """``parameters*.yml``/``.yaml`` files (recursively) of each env folder, most specific env first."""
    files: list[Path] = []
    for env in env_dirs:
        folder = conf_root / env
        if folder.is_dir():
            found = {p for pattern in ("**/parameters*.yml", "**/parameters*.yaml") for p in folder.glob(pattern)}
            files.extend(sorted(found))
    return files


def _top_level_keys(path: Path) -> set[str]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return set()
    return set(content) if isinstance(content, dict) else set()


def find_parameter_file(key: str, conf_root: Path, env: str | None, base_env: str = "base") -> str:
    """The parameters file that defines top-level ``key`` (the run env's file wins over base's)."""
    envs = [e for e in (env, base_env) if e]
    for path in _parameter_files(conf_root, envs):
        if key in _top_level_keys(path):
            try:
                return str(path.relative_to(conf_root.parent))
            except ValueError:
                return str(path)
    return f"<no parameters file under {conf_root} defines '{key}'>"


# ------------------------------------------------------------------------------------ formatting
def _dotted(key: str, loc: tuple[Any, ...], raw: Any) -> tuple[str, str]:
    """``model_training.backbone.name`` from pydantic's loc; list items as ``[i]`` with their name."""
    parts, note, node = [key], "", raw
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, Mapping) and "name" in node:
                note = f" (entry name: {node['name']!r})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return ".".join(parts), note


def _problems_of(
    key: str, model: type[BaseModel], raw: Any
) -> tuple[list[tuple[str, str, Any, str]], BaseModel | None]:
    """(key path, note, bad value, rule) per pydantic error, and the model when valid."""
    try:
        return [], model.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            path, note = _dotted(key, tuple(err.get("loc", ())), raw)
            message = err.get("msg", "invalid")
            if err.get("type") == "extra_forbidden":
                allowed = _allowed_keys(model, tuple(err.get("loc", ()))[:-1])
                message = "unknown key (a typo?)" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
            bad = _MISSING if err.get("type") == "missing" else err.get("input")
            if not err.get("loc"):  # a rule across keys: the message names them, the value is the group
                bad, message = _WHOLE_GROUP, message.removeprefix("Value error, ")
            problems.append((path, note, bad, message))
        return problems, None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model that an unknown key was found in."""
    current: Any = model
    for item in loc:
        if isinstance(item, int):
            continue
        field = getattr(current, "model_fields", {}).get(item)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _cross_checks(schema: SchemaConfig) -> list[tuple[str, str, Any, str]]:
    """Rules pydantic cannot see alone: feature names must not shadow canonical columns."""
    problems = []
    groups = [
        ("categorical", list(schema.categorical)),
        ("numerical", [n.name for n in schema.numerical]),
        ("log_features", [f.name for f in schema.log_features]),
    ]
    for group, names in groups:
        for i, name in enumerate(names):
            if name in CANONICAL_COLUMNS:
                path = f"schema.{group}[{i}]" + (".name" if group != "categorical" else "")
                problems.append(
                    (path, "", name, f"a feature name may not be a canonical column ({', '.join(CANONICAL_COLUMNS)})")
                )
    return problems


_RUNTIME_REFERENCE = re.compile(r"\$\{\s*runtime_params:\s*([A-Za-z0-9_]+)")


def runtime_only_keys(conf_root: Path, env: str | None, base_env: str = "base") -> set[str]:
    """Top-level names the configuration reads with ``${runtime_params:NAME}`` (e.g. ``table_path``):
    legitimate ``--params`` keys that are not parameter groups."""
    names: set[str] = set()
    for folder in {conf_root / e for e in (base_env, env) if e}:
        for path in (*folder.glob("**/*.yml"), *folder.glob("**/*.yaml")) if folder.is_dir() else ():
            try:
                names.update(_RUNTIME_REFERENCE.findall(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue
    return names


def _dotted_fields(model: type[BaseModel], prefix: str) -> list[str]:
    """Every dotted key path of a parameter model (``model_training.search.n_trials``, ...)."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        out.append(path)
        nested = _model_in(field.annotation)
        if nested is not None:
            out.extend(_dotted_fields(nested, path))
    return out


def _leaf_paths(value: Any, prefix: str) -> list[str]:
    if isinstance(value, Mapping) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, f"{prefix}.{k}")]
    return [prefix]


def _suggest(key: str, value: Any) -> str:
    """'did you mean ...' for an unknown top-level key: a group name close to it, or the known dotted
    paths that end with the key paths given (``search.n_trials`` -> ``model_training.search.n_trials``)."""
    close = difflib.get_close_matches(str(key), list(PARAMETER_MODELS), n=1, cutoff=0.8)
    if close:
        return f"; did you mean '{close[0]}'?"
    known = [p for group, model in PARAMETER_MODELS.items() for p in _dotted_fields(model, group)]
    hits: list[str] = []
    for leaf in _leaf_paths(value, str(key)):
        hits.extend(p for p in known if p.endswith("." + leaf))
    hits = sorted(dict.fromkeys(hits))
    return f"; did you mean {', '.join(repr(h) for h in hits[:3])}?" if hits else ""


def check_parameters(
    params: Mapping[str, Any],
    conf_root: Path,
    env: str | None,
    base_env: str = "base",
    runtime_keys: set[str] | None = None,
) -> dict[str, BaseModel]:
    """Validate every known top-level key; raise :class:`ConfigurationError` listing all problems."""
    runtime_keys = runtime_keys or set()
    lines: list[str] = []

    def where(key: str) -> str:
        origin = find_parameter_file(key, conf_root, env, base_env)
        return origin + (" (overridden by runtime --params)" if key in runtime_keys else "")

    validated: dict[str, BaseModel] = {}
    for key, model in PARAMETER_MODELS.items():
        if key not in params:
            lines.append(
                f"  - '{key}' is not defined in any parameters file under {conf_root} (expected one for {model.__name__})"
            )
            continue
        problems, value = _problems_of(key, model, params[key])
        if value is not None:
            validated[key] = value
            if isinstance(value, SchemaConfig):
                problems = _cross_checks(value)
        for path, note, bad, rule in problems:
            shown = "" if bad is _WHOLE_GROUP else f" value {bad!r}:"
            lines.append(f"  - {where(key)}: key '{path}'{note}:{shown} {rule}")
    schema, features = validated.get("schema"), validated.get("feature_engineering")
    if isinstance(schema, SchemaConfig) and isinstance(features, FeatureConfig):
        from ccss_pipeline.data.splitting import split_config_problems

        for path, rule in split_config_problems(schema, features):  # rules across the two groups
            lines.append(f"  - {where(path.split('.')[0])}: key '{path}': {rule}")
    runtime_only = runtime_only_keys(conf_root, env, base_env)
    for key in params:
        if key in PARAMETER_MODELS or (key in runtime_keys and key in runtime_only):
            continue
        origin = "runtime --params" if key in runtime_keys else find_parameter_file(str(key), conf_root, env, base_env)
        lines.append(
            f"  - {origin}: key '{key}': unknown top-level key{_suggest(str(key), params[key])}"
            f" (allowed: {', '.join(PARAMETER_MODELS)}"
            + (f"; runtime-only: {', '.join(sorted(runtime_only))}" if runtime_only else "")
            + ")"
        )
    if lines:
        raise ConfigurationError("invalid parameters (nothing was run):\n" + "\n".join(lines))
    return validated


# ------------------------------------------------------------------------------------------ hooks
class ConfigurationCheckHooks:
    """Validate all parameters as soon as the Kedro context exists (before any node or dataset)."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        # the merged parameters (base + env + runtime --params) before Kedro's own, pipeline-scoped
        # typed validation, which would convert them and validate only the pipelines being run
        params = loader["parameters"]
        conf_root = Path(getattr(loader, "conf_source", Path(context.project_path) / "conf"))
        if not conf_root.is_absolute():
            conf_root = Path(context.project_path) / conf_root
        env = context.env or getattr(loader, "default_run_env", None)
        base_env = getattr(loader, "base_env", None) or "base"
        runtime_keys = set(getattr(loader, "runtime_params", None) or {})
        check_parameters(params, conf_root, env, base_env, runtime_keys)
        logger.debug("all %d parameter groups validated", len(PARAMETER_MODELS))


class ProjectLockHooks:
    """One run at a time per project (``ccss_pipeline.run_lock``): taken before the first node, released
    after the last or on error."""

    def __init__(self) -> None:
        self._lock: ProjectLock | None = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        project = run_params.get("project_path") or Path.cwd()
        lock = ProjectLock(project)
        names = list(run_params.get("pipeline_names") or [])
        lock.acquire(
            {"pipelines": ",".join(names) or run_params.get("pipeline_name") or "__default__"},
            shared=names == [SEARCH_PIPELINE],
        )  # N search workers split one study
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()


#: Catalog entries built for the fitted feature spec (they record its fingerprint) -> the pipeline that rebuilds them.
SPEC_STAMPED = {
    "train_model_input": "feature_engineering",
    "validation_model_input": "feature_engineering",
    "test_model_input": "feature_engineering",
    "feature_importance": "counterfactual_pairs",
    "counterfactual_pairs": "counterfactual_pairs",
}
SPEC_STAMPED_RECORDS = frozenset({"feature_importance"})  # a record (JSON); the others are tables (attrs)


class SpecCheckHooks:
    """A node that reads ``feature_spec`` reads nothing built for another spec: each input in :data:`SPEC_STAMPED`
    must record its fingerprint, else a ``StaleArtifactError`` names it and the pipeline that rebuilds it
    (:mod:`ccss_pipeline.lineage`). Trained models and chosen parameters are checked where used."""

    @hook_impl
    def before_node_run(self, node: Any, inputs: dict[str, Any]) -> None:
        spec = inputs.get("feature_spec")
        if spec is None:
            return
        for name in node.inputs:
            if name in SPEC_STAMPED:
                check = require_spec if name in SPEC_STAMPED_RECORDS else require_table_spec
                check(name, inputs[name], spec, SPEC_STAMPED[name])


class PairMoveCheckHooks:
    """A training node whose method uses pairs reads no pairs drawn with another move than the catalog's
    ``params:counterfactual_pairs`` asks for (:mod:`ccss_pipeline.model.pair_check`); run after the spec check."""

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any]) -> None:
        if {"counterfactual_pairs", "params:model_training"} <= set(node.inputs):
            from ccss_pipeline.model.pair_check import require_configured_move  # torch: only for training

            pairs, training = inputs["counterfactual_pairs"], inputs["params:model_training"]
            require_configured_move(pairs, training, catalog.load("params:counterfactual_pairs"))


class SparkHooks:
    """Build the SparkSession of an environment that has a ``spark.yml`` (``--env spark``), before any
    dataset is loaded, so the data engine (``backend: pyspark``) attaches to it. Others start no JVM."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            conf = dict(context.config_loader["spark"] or {})
        except Exception:  # noqa: BLE001 - no spark.yml in this environment
            return
        if not conf:
            return
        try:
            from pyspark import SparkConf
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ConfigurationError(
                "this environment configures Spark (spark.yml) but PySpark is not installed: "
                "pip install 'ccss-pipeline[spark]' (and Java 17)"
            ) from exc
        from ccss_pipeline.data.relational.backends import use_this_python_for_spark_workers

        use_this_python_for_spark_workers()
        spark_conf = SparkConf().setAll([(str(k), str(v)) for k, v in conf.items()])
        SparkSession.builder.config(conf=spark_conf).getOrCreate()
