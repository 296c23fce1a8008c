"""Output transforms reading the image or the mask part of a generator evaluator's (pred, label) pairs."""

from __future__ import annotations

from typing import Callable

import torch
from monai.utils import CommonKeys as Keys

__all__ = ["PAIR_PARTS", "from_pair"]

PAIR_PARTS = ("image", "mask")


def from_pair(
    part: str, image_channels: int = 1, mask_threshold: float | None = None
) -> Callable[[dict], tuple[torch.Tensor, torch.Tensor]]:
    """
    An output transform for metric handlers of an evaluator whose ``pred`` and ``label`` are batched joint pairs
    ``[B, C_img + C_mask, H, W]`` (a DHVAE's reconstruction and its input; ``decollate=False``): it returns the
    ``(pred, label)`` channels of ``part``, so PSNR / SSIM score the image and Dice the mask.

    Args:
        part: ``"image"`` (the first ``image_channels``) or ``"mask"`` (the rest).
        image_channels: ``C_img``.
        mask_threshold: binarise the predicted part at this probability (for Dice); None keeps it continuous.

    Returns:
        a callable ``output -> (pred_part, label_part)``.

    Example::

        IgniteMetricHandler(PSNRMetric(max_val=1.0), output_transform=from_pair("image", image_channels=1))
    """
    if part not in PAIR_PARTS:
        raise ValueError(f"part must be one of {PAIR_PARTS}, got {part!r}.")
    channels = slice(0, image_channels) if part == "image" else slice(image_channels, None)

    def transform(output: dict) -> tuple[torch.Tensor, torch.Tensor]:
        pred, label = output[Keys.PRED][:, channels], output[Keys.LABEL][:, channels]
        if mask_threshold is not None:
            pred = (pred > mask_threshold).to(pred.dtype)
        return pred, label

    return transform
