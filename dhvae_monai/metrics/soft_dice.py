"""The paper's segmentation score: soft Dice pooled over a batch of 2D slices."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

__all__ = ["BatchPooledSoftDiceMetric", "batch_pooled_soft_dice", "from_tumour_slices"]


def batch_pooled_soft_dice(probabilities: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """
    Soft Dice of a batch taken as one set of pixels: ``2 sum(p t) / (sum p + sum t + eps)``, no thresholding.

    This is the score of the authors' U-Net notebook (``method.md`` §9), reported per test batch of 32 tumour slices
    and averaged over batches; it is not a per-volume 3D Dice.

    Args:
        probabilities: predicted foreground probabilities ``[B, C, H, W]`` (after the sigmoid).
        target: binary ground truth of the same shape.
        eps: added to the denominator, as in the authors' code.

    Returns:
        a scalar tensor.

    Example::

        score = batch_pooled_soft_dice(torch.sigmoid(logits), masks)
    """
    if probabilities.shape != target.shape:
        raise ValueError(f"probabilities {tuple(probabilities.shape)} and target {tuple(target.shape)} differ in shape.")
    intersection = (probabilities * target).sum()
    return 2.0 * intersection / (probabilities.sum() + target.sum() + eps)


class BatchPooledSoftDiceMetric(CumulativeIterationMetric):
    """
    MONAI metric accumulating :func:`batch_pooled_soft_dice` of every batch and averaging the batch scores, for
    comparability with the paper's reported 2D soft Dice.

    Args:
        eps: see :func:`batch_pooled_soft_dice`.

    Example::

        metric = BatchPooledSoftDiceMetric()
        for probabilities, masks in batches:
            metric(y_pred=probabilities, y=masks)
        paper_dice = metric.aggregate().item()
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("BatchPooledSoftDiceMetric needs the ground truth y.")
        return batch_pooled_soft_dice(y_pred, y, self.eps).reshape(1, 1)

    def aggregate(self, reduction: MetricReduction | str | None = MetricReduction.MEAN) -> torch.Tensor:
        """Mean of the per-batch scores."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("BatchPooledSoftDiceMetric has no batch scores yet.")
        score, _ = do_metric_reduction(data, reduction)
        return score


def from_tumour_slices(
    prob_key: str = "prob", label_key: str = "label", slices_per_batch: int = 32
) -> Callable[[Sequence[dict]], tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """
    An output transform feeding :class:`BatchPooledSoftDiceMetric` from an evaluator of whole 3D volumes: for each
    decollated volume ``[C, H, W, D]`` it keeps the axial slices whose ground truth has tumour (the paper scores
    tumour slices only) and cuts them into batches of ``slices_per_batch`` slices, each scored as one pooled set.

    Args:
        prob_key: output key of the predicted probabilities (before thresholding).
        label_key: output key of the ground truth.
        slices_per_batch: slices pooled per score (the paper's test batch size, 32).

    Returns:
        a callable ``outputs -> (probability batches, label batches)``, lists of ``[S, C, H, W]`` tensors.

    Example::

        IgniteMetricHandler(BatchPooledSoftDiceMetric(), output_transform=from_tumour_slices("prob", "label"))
    """

    def transform(outputs: Sequence[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        probabilities, labels = [], []
        for output in outputs:
            label = torch.as_tensor(output[label_key])
            tumour = label.flatten(0, -2).amax(0) > 0
            if not tumour.any():
                continue
            probability = torch.as_tensor(output[prob_key])[..., tumour].movedim(-1, 0)
            label = label[..., tumour].movedim(-1, 0)
            probabilities += list(probability.split(slices_per_batch))
            labels += list(label.split(slices_per_batch))
        return probabilities, labels

    return transform
