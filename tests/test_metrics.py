"""The metric registry: declarations, the schema they make, and a new metric flowing from one
declaration to the record, the schema, the leaderboard rows and columns, and lm-eval's task
metrics (the example of docs/metrics.md)."""

import json

import numpy as np
import pytest

from cultbench.harness import SurveySettings, survey_metrics
from cultbench.publish.leaderboard import build
from cultbench.publish.page import columns, distribution_columns, summary_columns
from cultbench.evaluation.metrics import (DISTRIBUTION, INDEX, METRICS, Metric, ScoredSplit, compute_metrics, metrics_for,
                               primary_metric, register_metric, signed_error, unregister_metric)
from cultbench.runs.results import check_record, schema, schema_file, with_registered_metrics
from test_leaderboard import make_record, write_entries


def test_cultbench_metrics_are_declared_once_with_one_primary_per_kind():
    assert [m.name for m in metrics_for(INDEX)] == [
        "l1", "l1_per_wording", "l1_by_order", "signed_error", "content_free_l1", "world_mean_l1",
        "l1_over_content_free", "l1_over_world_mean", "directedness", "mirror", "alignment",
        "dimension_rank_agreement", "option_mass"]  # measurement v4: balanced L1, references, direction
    assert [m.name for m in metrics_for(DISTRIBUTION)] == ["similarity", "similarity_per_wording", "jsd", "rank",
                                                           "option_mass"]
    assert primary_metric(INDEX).name == "l1" and primary_metric(INDEX).higher_is_better is False
    assert primary_metric(DISTRIBUTION).name == "similarity" and primary_metric(DISTRIBUTION).higher_is_better
    with pytest.raises(ValueError, match="already registered"):
        register_metric(METRICS["l1"])
    with pytest.raises(ValueError, match="give compute or per_variant"):
        Metric("x", "x", "x", (INDEX,), higher_is_better=None, fmt=".1f", schema={})
    with pytest.raises(ValueError, match="kinds must be among"):
        Metric("x", "x", "x", ("survey",), higher_is_better=None, fmt=".1f", schema={}, compute=len)


def test_the_committed_schema_describes_exactly_the_registered_metrics():
    """The schema records are validated against is the committed file with the registry's metrics
    merged in; for cultbench's own metrics the merge changes nothing, so the file and the
    declarations cannot drift apart."""
    assert with_registered_metrics(schema_file()) == schema_file() == schema()


def test_a_split_computes_every_metric_of_its_kind_in_registry_order():
    scores = np.array([[10.0, 20.0], [30.0, 40.0]])
    split = ScoredSplit(INDEX, ["a", "b"], ["pdi", "idv"], scores, np.array([15.0, 25.0]), np.full((2, 3), 0.5),
                        context={"indices": {"pdi": 20.0, "idv": 30.0}, "target_scores": {"pdi": 15.0, "idv": 25.0}})
    got = compute_metrics(split)
    assert got["l1"] == pytest.approx(np.mean([10.0, 30.0])) and got["l1_per_variant"] == {"a": 10.0, "b": 30.0}
    assert got["signed_error"] == dict(zip(["pdi", "idv"], signed_error(scores.mean(0), [15, 25]).tolist()))
    assert got["option_mass"] == 0.5 and list(got) == list(split.values)


@pytest.fixture
def max_error():
    """The guide's example metric: the largest absolute error over the dimensions (lower is better)."""
    metric = register_metric(Metric(
        "max_abs_error", "Max |error|", "The largest absolute error over the dimensions, of the split's mean indices.",
        (INDEX,), higher_is_better=False, fmt=".1f", task=True,
        schema={"type": "number", "minimum": 0},
        compute=lambda s: float(np.abs(s.scores.mean(axis=0) - s.target).max())))
    yield metric
    unregister_metric(metric.name)
    assert "max_abs_error" not in schema()["$defs"]["split_metrics"]["properties"]


def test_a_declared_metric_flows_to_records_schema_rows_columns_and_tasks(tmp_path, max_error):
    record, stem = make_record(heldout={"pdi": 70.0, "idv": 50.0, "mas": 50.0, "uai": 50.0, "lto": 50.0,
                                        "ivr": 50.0})
    errors = record["metrics"]["heldout"]["signed_error"]
    assert record["metrics"]["heldout"]["max_abs_error"] == pytest.approx(max(abs(v) for v in errors.values()))
    assert check_record(record) is record
    assert "max_abs_error" in schema()["$defs"]["split_metrics"]["properties"]
    bad = json.loads(json.dumps(record))
    bad["metrics"]["heldout"]["max_abs_error"] = -1.0
    with pytest.raises(Exception, match="max_abs_error"):
        check_record(bad)
    old = json.loads(json.dumps(record))  # a record written before the metric existed is still valid
    del old["metrics"]["heldout"]["max_abs_error"], old["metrics"]["train"]["max_abs_error"]
    assert check_record(old) is old

    write_entries(tmp_path / "entries", [(record, stem)])
    board, paths = build(tmp_path / "entries", tmp_path)
    row = board["rows"][0]
    assert row["max_abs_error"]["heldout"]["mean"] == pytest.approx(record["metrics"]["heldout"]["max_abs_error"])
    assert "max_abs_error_heldout" in [c.id for c in columns(["pdi"])]
    assert "Max |error| (held-out)" in (tmp_path / "LEADERBOARD.md").read_text()
    assert "Max |error| (held-out)" in (tmp_path / "index.html").read_text()
    assert "max_abs_error_heldout" not in [c.id for c in distribution_columns()]
    assert [c.id for c in summary_columns()][3] == "sum_l1_heldout"

    metrics = survey_metrics(SurveySettings.resolve({"target": "US"}))
    records = [(iid, 3.0, 0.5) for iid in SurveySettings.resolve({}).instrument.item_ids]
    assert metrics["max_abs_error"][1] is False
    assert metrics["max_abs_error"][0](records) == pytest.approx(
        max(abs(v) for v in (np.array([metrics[d][0](records) for d in ("pdi", "idv", "mas", "uai", "lto", "ivr")])
                             - SurveySettings.resolve({"target": "US"}).target.vector(
                                 ["pdi", "idv", "mas", "uai", "lto", "ivr"]))))
    assert "max_abs_error" not in survey_metrics(SurveySettings.resolve({}))
