from __future__ import annotations

import pytest
import torch

from dhvae_monai.metrics import BatchPooledSoftDiceMetric, batch_pooled_soft_dice


def test_soft_dice_pools_the_batch_without_thresholding():
    probabilities = torch.tensor([[[[0.5, 0.5]]], [[[1.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 0.0]]]])
    # pooled: intersection 0.5 + 1.0, sums 2.0 and 2.0 -> 2 * 1.5 / 4
    assert float(batch_pooled_soft_dice(probabilities, target)) == pytest.approx(0.75, abs=1e-6)
    # pooled over the batch, unlike the mean of per-slice scores (1.0 and 0.0 here, mean 0.5)
    probabilities = torch.tensor([[[[1.0, 1.0, 1.0, 1.0]]], [[[0.0, 0.0, 0.0, 1.0]]]])
    target = torch.tensor([[[[1.0, 1.0, 1.0, 1.0]]], [[[1.0, 0.0, 0.0, 0.0]]]])
    assert float(batch_pooled_soft_dice(probabilities, target)) == pytest.approx(8 / 10, abs=1e-6)


def test_metric_averages_batch_scores():
    metric = BatchPooledSoftDiceMetric()
    metric(y_pred=torch.ones(2, 1, 2, 2), y=torch.ones(2, 1, 2, 2))  # 1.0
    metric(y_pred=torch.zeros(2, 1, 2, 2), y=torch.ones(2, 1, 2, 2))  # 0.0
    assert float(metric.aggregate()) == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        batch_pooled_soft_dice(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 3))
