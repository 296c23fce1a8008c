"""Metrics MONAI lacks: the paper's batch-pooled 2D soft Dice."""

from __future__ import annotations

from dhvae_monai.metrics.soft_dice import BatchPooledSoftDiceMetric, batch_pooled_soft_dice, from_tumour_slices

__all__ = ["BatchPooledSoftDiceMetric", "batch_pooled_soft_dice", "from_tumour_slices"]
