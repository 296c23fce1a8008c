from __future__ import annotations

import json
import math

import pytest
import torch
from ignite.engine import Engine, Events

from dhvae_monai.handlers import MetricsSummaryWriter


def _evaluator(metrics: dict, metric_details: dict | None) -> Engine:
    """An engine that, like a MONAI evaluator, fills ``state.metrics`` (and ``metric_details``) every epoch."""
    engine = Engine(lambda engine, batch: None)

    def fill(engine):
        engine.state.metrics = dict(metrics)
        if metric_details is not None:
            engine.state.metric_details = dict(metric_details)

    engine.add_event_handler(Events.EPOCH_COMPLETED, fill)
    return engine


def test_summary_has_aggregates_per_class_means_ignoring_nan_and_case_count(tmp_path):
    dice = torch.tensor([[0.8, 0.6], [0.6, float("nan")], [0.7, 0.2]])
    hd95 = torch.tensor([[2.0, float("nan")], [4.0, float("nan")], [float("nan"), float("nan")]])
    engine = _evaluator({"test_mean_dice": 0.65, "test_hd95": float("nan")}, {"test_mean_dice": dice, "test_hd95": hd95})
    path = tmp_path / "evaluation" / "summary.json"
    MetricsSummaryWriter(path, class_names=["WT", "TC"]).attach(engine)
    engine.run([0, 1], max_epochs=1)

    text = path.read_text()
    assert "NaN" not in text and text.endswith("\n")
    summary = json.loads(text)
    assert summary["num_cases"] == 3
    assert summary["metrics"] == {"test_mean_dice": 0.65, "test_hd95": None}
    assert summary["per_class"]["test_mean_dice"]["WT"] == pytest.approx(0.7)
    assert summary["per_class"]["test_mean_dice"]["TC"] == pytest.approx(0.4)  # the NaN case is left out
    assert summary["per_class"]["test_hd95"] == {"WT": pytest.approx(3.0), "TC": None}  # undefined everywhere
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json"]  # no temporary file left


def test_class_names_not_matching_the_channels_fall_back_to_indices(tmp_path):
    details = [[1.0, 0.0, 0.5], [0.0, 0.0, 0.5]]  # a plain list, 3 channels for 1 class name
    per_case = torch.tensor([0.25, 0.75, float("inf")])  # one value per case, no channel dimension
    engine = _evaluator({"dice": torch.tensor(0.5), "hd": math.inf}, {"dice": details, "single": per_case})
    MetricsSummaryWriter(tmp_path / "summary.json", class_names=["WT"]).attach(engine)
    engine.run([0], max_epochs=1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"] == {"dice": 0.5, "hd": None}
    assert summary["per_class"]["dice"] == {"0": 0.5, "1": 0.0, "2": 0.5}
    # a 1-D detail has one column, named after the one class; inf is not NaN, so the mean is inf -> null
    assert summary["per_class"]["single"] == {"WT": None}
    assert summary["num_cases"] == 3


def test_without_metric_details_only_aggregates_are_written(tmp_path):
    engine = _evaluator({"dice": 0.9}, None)
    MetricsSummaryWriter(tmp_path / "summary.json", class_names=["WT"]).attach(engine)
    engine.run([0], max_epochs=1)
    assert json.loads((tmp_path / "summary.json").read_text()) == {"metrics": {"dice": 0.9}, "per_class": {}, "num_cases": 0}


def test_written_only_when_the_evaluator_completes(tmp_path):
    written = []
    engine = _evaluator({"dice": 0.9}, None)
    MetricsSummaryWriter(tmp_path / "summary.json", class_names=["WT"]).attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: written.append((tmp_path / "summary.json").exists()))
    engine.run([0], max_epochs=2)
    assert written == [False, False] and (tmp_path / "summary.json").is_file()
