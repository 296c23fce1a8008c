"""Diversity of a set of slices: mean multi-scale SSIM between random pairs of its images."""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from monai.metrics import MultiScaleSSIMMetric

__all__ = ["MS_SSIM_KERNEL_SIZE", "MS_SSIM_WEIGHTS", "mean_pairwise_ms_ssim", "random_distinct_pairs"]

#: Gaussian window of the SSIM statistics (sigma 1.5 as in Wang et al.), 7 pixels instead of 11 so that three scales
#: fit 32 x 32 slices: MONAI requires ``H // (scales - 1) ** 2 > kernel_size - 1``, i.e. 8 > 6 at 32 px (valid from
#: 28 px up).
MS_SSIM_KERNEL_SIZE = 7
#: three scales (full, 1/2, 1/4 resolution), weighted like the first three of Wang et al.'s five, renormalised to sum
#: to 1 so identical images score 1; MONAI's five scales with an 11-pixel window would need slices of 176 px or more.
MS_SSIM_WEIGHTS = tuple(weight / (0.0448 + 0.2856 + 0.3001) for weight in (0.0448, 0.2856, 0.3001))


def random_distinct_pairs(num_items: int, num_pairs: int, seed: int = 0) -> torch.Tensor:
    """
    Index pairs ``(i, j)``, ``i != j``, of a set of ``num_items``: every unordered pair when there are at most
    ``num_pairs`` of them, otherwise ``num_pairs`` pairs drawn uniformly (with replacement), seeded.

    Args:
        num_items: size of the set (at least 2).
        num_pairs: pairs wanted.
        seed: seed of the draw.

    Returns:
        a ``[P, 2]`` integer tensor, ``P <= num_pairs``.

    Raises:
        ValueError: fewer than 2 items, or ``num_pairs < 1``.

    Example::

        pairs = random_distinct_pairs(200, num_pairs=100)   # [100, 2]
    """
    if num_items < 2:
        raise ValueError(f"pairs of distinct items need at least 2 items, got {num_items}.")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    if num_items * (num_items - 1) // 2 <= num_pairs:
        return torch.tensor(list(itertools.combinations(range(num_items), 2)), dtype=torch.long)
    random = torch.Generator().manual_seed(seed)
    first = torch.randint(num_items, (num_pairs,), generator=random)
    second = (first + torch.randint(1, num_items, (num_pairs,), generator=random)) % num_items
    return torch.stack([first, second], dim=1)


@torch.no_grad()
def mean_pairwise_ms_ssim(
    images: torch.Tensor,
    num_pairs: int = 100,
    seed: int = 0,
    batch_size: int = 32,
    data_range: float = 1.0,
    kernel_size: int = MS_SSIM_KERNEL_SIZE,
    kernel_sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> float:
    """
    Mean MS-SSIM (MONAI's :class:`~monai.metrics.MultiScaleSSIMMetric`) between random pairs of distinct images of
    a set: 1 when all images are the same (no diversity), lower for a more varied set. Compare a generator's value
    with the same number on real slices: a much higher one means the samples vary less than the data.

    The defaults (three scales, a 7-pixel Gaussian window) are valid for slices from 32 x 32 up; see
    :data:`MS_SSIM_KERNEL_SIZE` and :data:`MS_SSIM_WEIGHTS`.

    Args:
        images: ``[N, C, H, W]`` with ``N >= 2``, values in ``[0, data_range]``.
        num_pairs: pairs scored (see :func:`random_distinct_pairs`).
        seed: seed of the pair draw.
        batch_size: pairs per MS-SSIM call.
        data_range: value range of the images.
        kernel_size, kernel_sigma, weights: see :class:`~monai.metrics.MultiScaleSSIMMetric`.

    Returns:
        the mean MS-SSIM over the pairs.

    Raises:
        ValueError: ``images`` is not 4D or has fewer than 2 images; slices too small for the scales and window
            (MONAI's message gives the minimum size).

    Example::

        synthetic_ms_ssim = mean_pairwise_ms_ssim(kept_pairs[:, :1])
        real_ms_ssim = mean_pairwise_ms_ssim(real_images)
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}.")
    pairs = random_distinct_pairs(len(images), num_pairs, seed)
    metric = MultiScaleSSIMMetric(
        spatial_dims=2, data_range=data_range, kernel_size=kernel_size, kernel_sigma=kernel_sigma, weights=weights
    )
    for batch in pairs.split(batch_size):
        metric(y_pred=images[batch[:, 0]], y=images[batch[:, 1]])
    return float(metric.aggregate())
