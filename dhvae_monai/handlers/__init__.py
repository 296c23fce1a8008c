"""Ignite handlers that MONAI does not have."""

from __future__ import annotations

from dhvae_monai.handlers.checkpoints import (
    AtomicCheckpointSaver,
    LatestCheckpointLoader,
    WeightsExporter,
    latest_checkpoint,
)
from dhvae_monai.handlers.gradient_clipping import GradientNormClipper
from dhvae_monai.handlers.metrics_summary import MetricsSummaryWriter
from dhvae_monai.handlers.sample_preview import SamplePreviewSaver

__all__ = [
    "AtomicCheckpointSaver",
    "GradientNormClipper",
    "LatestCheckpointLoader",
    "MetricsSummaryWriter",
    "SamplePreviewSaver",
    "WeightsExporter",
    "latest_checkpoint",
]
