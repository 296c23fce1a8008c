"""A JSON summary of an evaluator's metrics, overall and per class."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import torch
from ignite.engine import Engine, Events

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["MetricsSummaryWriter"]


class MetricsSummaryWriter:
    """
    When an evaluator completes, write its metrics to a JSON file: the aggregated value of every metric, the mean of
    every metric per class (from ``engine.state.metric_details``, NaN cases ignored), and the number of cases.
    MONAI's ``MetricsSaver`` writes the per-case CSV beside it.

    Args:
        path: destination JSON file (written atomically).
        class_names: names of the metric's classes (channels), e.g. the tumour regions ``["WT"]``.
        name: logger name.

    Example::

        MetricsSummaryWriter("runs/evaluation/summary.json", class_names=["WT"]).attach(evaluator)
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str], name: str | None = None) -> None:
        self.path = Path(path)
        self.class_names = list(class_names)
        self.logger = logging.getLogger(name or __name__)

    def attach(self, engine: Engine) -> None:
        """Write on ``Events.COMPLETED``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        per_class: dict[str, dict[str, float | None]] = {}
        num_cases = 0
        for metric, details in getattr(engine.state, "metric_details", {}).items():
            details = torch.as_tensor(details, dtype=torch.float64).reshape(len(details), -1)
            num_cases = max(num_cases, details.shape[0])
            names = self.class_names if details.shape[1] == len(self.class_names) else [str(i) for i in range(details.shape[1])]
            per_class[metric] = {name: _finite_or_none(details[:, i].nanmean().item()) for i, name in enumerate(names)}
        summary = {
            "metrics": {name: _finite_or_none(float(value)) for name, value in engine.state.metrics.items()},
            "per_class": per_class,
            "num_cases": num_cases,
        }
        with atomic_path(self.path) as temporary:
            temporary.write_text(json.dumps(summary, indent=2) + "\n")
        self.logger.info("metrics summary written to %s: %s", self.path, summary["metrics"])


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN; a metric undefined on every case (e.g. HD95 with empty predictions) becomes null
    return value if math.isfinite(value) else None
