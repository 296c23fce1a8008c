"""Metrics MONAI lacks: the paper's batch-pooled 2D soft Dice, and the sample quality of a trained generator."""

from __future__ import annotations

from dhvae_monai.metrics.acceptance import PriorAcceptance, prior_acceptance
from dhvae_monai.metrics.border import tumour_on_border
from dhvae_monai.metrics.diversity import (
    MS_SSIM_KERNEL_SIZE,
    MS_SSIM_WEIGHTS,
    mean_pairwise_ms_ssim,
    random_distinct_pairs,
)
from dhvae_monai.metrics.feature_distance import FeatureDistance, feature_distance
from dhvae_monai.metrics.pooled_features import PooledLayerFeatures
from dhvae_monai.metrics.reconstruction import reconstruction_scores
from dhvae_monai.metrics.sample_quality import SampleQualityReport, evaluate_sample_quality
from dhvae_monai.metrics.soft_dice import BatchPooledSoftDiceMetric, batch_pooled_soft_dice, from_tumour_slices

__all__ = [
    "MS_SSIM_KERNEL_SIZE",
    "MS_SSIM_WEIGHTS",
    "BatchPooledSoftDiceMetric",
    "FeatureDistance",
    "PooledLayerFeatures",
    "PriorAcceptance",
    "SampleQualityReport",
    "batch_pooled_soft_dice",
    "evaluate_sample_quality",
    "feature_distance",
    "from_tumour_slices",
    "mean_pairwise_ms_ssim",
    "prior_acceptance",
    "random_distinct_pairs",
    "reconstruction_scores",
    "tumour_on_border",
]
