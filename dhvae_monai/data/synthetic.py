"""Synthetic (image, mask) pairs from a trained generator: binarisation and tumour-area filtering."""

from __future__ import annotations

import torch

__all__ = ["filter_synthetic_pairs"]


def filter_synthetic_pairs(
    pairs: torch.Tensor, image_channels: int, min_tumour_area: float = 200.0, mask_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Keep the sampled pairs whose tumour is large enough and binarise their masks (``method.md`` §7).

    A pair is kept when the soft tumour mass (sum over pixels of the per-pixel maximum over mask channels, i.e. the
    expected tumour area) exceeds ``min_tumour_area``; its mask channels are then thresholded at ``mask_threshold``.
    The paper keeps samples with more than 200 pixels on 128 x 128 slices, the lower edge of its slice selection;
    scale the threshold with the slice area for other sizes.

    Args:
        pairs: ``[N, C_img + C_mask, H, W]`` from :meth:`DHVAE.sample`, mask channels as probabilities.
        image_channels: ``C_img``, the number of leading image channels.
        min_tumour_area: minimum expected tumour area in pixels.
        mask_threshold: probability above which a mask pixel is tumour.

    Returns:
        ``(kept_pairs, keep)``: the kept pairs with binary masks ``[M, C, H, W]`` and the boolean selection ``[N]``.

    Raises:
        ValueError: ``pairs`` is not 4D or has no mask channel after ``image_channels``.

    Example::

        pairs = generator.sample(64)
        synthetic, keep = filter_synthetic_pairs(pairs, image_channels=1, min_tumour_area=200)
    """
    if pairs.ndim != 4 or pairs.shape[1] <= image_channels:
        raise ValueError(
            f"expected pairs [N, {image_channels} image + >=1 mask channels, H, W], got shape {tuple(pairs.shape)}."
        )
    masks = pairs[:, image_channels:]
    tumour_mass = masks.amax(dim=1).flatten(1).sum(1)
    keep = tumour_mass > min_tumour_area
    kept = pairs[keep].clone()
    kept[:, image_channels:] = (kept[:, image_channels:] > mask_threshold).to(kept.dtype)
    return kept, keep
