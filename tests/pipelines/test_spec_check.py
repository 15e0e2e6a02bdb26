"""The spec check made once, by a hook, before a node that reads ``feature_spec`` runs: an input built
for another spec is refused naming it and the pipeline that rebuilds it (``ccss_pipeline.lineage``)."""

from __future__ import annotations

import pandas as pd
import pytest

from ccss_pipeline.hooks import SPEC_STAMPED, SpecCheckHooks
from ccss_pipeline.lineage import SPEC_KEY, StaleArtifactError
from ccss_pipeline.pipeline_registry import register_pipelines
from tests.model.conftest import make_spec


@pytest.fixture(scope="module")
def pipelines():
    return register_pipelines()


def _node(pipelines, name: str):
    return next(n for p in pipelines.values() for n in p.nodes if n.name == name)


def _stamped(fingerprint: str | None) -> pd.DataFrame:
    frame = pd.DataFrame({"a": [1]})
    if fingerprint is not None:
        frame.attrs[SPEC_KEY] = fingerprint
    return frame


def test_an_input_of_another_spec_is_refused_before_the_node_runs(pipelines):
    spec = make_spec()
    node = _node(pipelines, "counterfactual_pairs.materialize_counterfactual_pairs")
    inputs = {
        "train_model_input": _stamped(spec.fingerprint),
        "feature_spec": spec,
        "feature_importance": {SPEC_KEY: "0000000000000000"},
        "params:counterfactual_pairs": None,
    }
    with pytest.raises(StaleArtifactError) as info:
        SpecCheckHooks().before_node_run(node=node, inputs=inputs)
    message = str(info.value)
    assert "'feature_importance' was built for another feature spec (fingerprint 0000000000000000)" in message
    assert "kedro run --pipelines=counterfactual_pairs" in message
    inputs["train_model_input"] = _stamped(None)  # the inputs are checked in the node's order
    with pytest.raises(StaleArtifactError, match="'train_model_input' records no feature-spec fingerprint"):
        SpecCheckHooks().before_node_run(node=node, inputs=inputs)
    inputs["train_model_input"], inputs["feature_importance"] = _stamped(spec.fingerprint), {SPEC_KEY: spec.fingerprint}
    SpecCheckHooks().before_node_run(node=node, inputs=inputs)


def test_the_compare_node_is_refused_an_input_of_another_spec(pipelines):
    """The comparison reads the splits and the pairs in one node that reads the spec: the hook checks them
    there (the node itself no longer does)."""
    spec = make_spec()
    node = _node(pipelines, "compare.comparison_data")
    assert set(node.inputs) & set(SPEC_STAMPED) == set(SPEC_STAMPED)
    inputs: dict = {name: _stamped(spec.fingerprint) for name in node.inputs}
    inputs["feature_spec"] = spec
    inputs["feature_importance"] = {SPEC_KEY: spec.fingerprint}
    SpecCheckHooks().before_node_run(node=node, inputs=inputs)
    inputs["counterfactual_pairs"] = _stamped("0000000000000000")
    with pytest.raises(StaleArtifactError) as info:
        SpecCheckHooks().before_node_run(node=node, inputs=inputs)
    assert "'counterfactual_pairs' was built for another feature spec (fingerprint 0000000000000000)" in str(info.value)
    assert "kedro run --pipelines=counterfactual_pairs" in str(info.value)
    inputs["counterfactual_pairs"], inputs["test_model_input"] = _stamped(spec.fingerprint), _stamped(None)
    with pytest.raises(StaleArtifactError, match="'test_model_input' records no feature-spec fingerprint"):
        SpecCheckHooks().before_node_run(node=node, inputs=inputs)


def test_a_node_without_the_spec_is_not_checked(pipelines):
    node = _node(pipelines, "evaluation.write_model_card")  # reads the splits for their time ranges only
    SpecCheckHooks().before_node_run(node=node, inputs={n: _stamped(None) for n in node.inputs})


def test_the_stamped_entries_are_written_by_the_pipelines_named_and_read_beside_the_spec(pipelines):
    for name, rebuild in SPEC_STAMPED.items():
        assert name in {d for n in pipelines[rebuild].nodes for d in n.outputs}, (name, rebuild)
    unchecked = {
        n.name
        for p in pipelines.values()
        for n in p.nodes
        if set(n.inputs) & set(SPEC_STAMPED) and "feature_spec" not in n.inputs
    }
    assert unchecked == {"evaluation.write_model_card"}, unchecked


def test_the_hook_is_registered():
    from ccss_pipeline.settings import HOOKS

    assert any(isinstance(hook, SpecCheckHooks) for hook in HOOKS)
