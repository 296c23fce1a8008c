"""Acceptance of a generator's prior draws by the tumour-area filter, and the border artefact among those kept."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from dhvae_monai.data.synthetic import filter_synthetic_pairs
from dhvae_monai.metrics.border import tumour_on_border

__all__ = ["PriorAcceptance", "prior_acceptance"]


class PriorAcceptance(NamedTuple):
    """
    Attributes:
        kept_pairs: the draws that passed the filter, masks binarised, ``[M, C_img + C_mask, H, W]`` on the CPU.
        num_draws: prior draws made.
        acceptance_rate: ``M / num_draws``.
        border_fraction: fraction of the kept pairs with tumour on the image border (see
            :func:`~dhvae_monai.metrics.border.tumour_on_border`); NaN when nothing was kept.
    """

    kept_pairs: torch.Tensor
    num_draws: int
    acceptance_rate: float
    border_fraction: float


@torch.no_grad()
def prior_acceptance(
    generator: nn.Module,
    num_draws: int,
    min_tumour_area: float = 200.0,
    mask_threshold: float = 0.5,
    batch_size: int = 64,
    seed: int = 0,
) -> PriorAcceptance:
    """
    Decode ``num_draws`` seeded prior draws of a :class:`~dhvae_monai.networks.nets.DHVAE` and pass them through
    :func:`~dhvae_monai.data.filter_synthetic_pairs`, as the ``sample`` stage does; with the same seed and batch size
    the kept pairs are the first pairs that stage writes.

    Args:
        generator: the trained generator (or a ``DistributedDataParallel`` wrapping it), put in eval mode here.
        num_draws: prior draws.
        min_tumour_area: see :func:`~dhvae_monai.data.filter_synthetic_pairs`.
        mask_threshold: see :func:`~dhvae_monai.data.filter_synthetic_pairs`.
        batch_size: draws per decoder pass.
        seed: seed of the latent draws.

    Returns:
        a :class:`PriorAcceptance`.

    Raises:
        ValueError: ``num_draws < 1``.

    Example::

        acceptance = prior_acceptance(generator, num_draws=1000, min_tumour_area=200)
        print(f"{acceptance.acceptance_rate:.0%} kept, {acceptance.border_fraction:.0%} of them touch the border")
    """
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}.")
    network = getattr(generator, "module", generator)
    random = torch.Generator(device=network.output_layer.weight.device).manual_seed(seed)
    was_training = network.training
    network.eval()
    kept = []
    try:
        for start in range(0, num_draws, batch_size):
            pairs = network.sample(min(batch_size, num_draws - start), generator=random)
            kept.append(filter_synthetic_pairs(pairs, network.image_channels, min_tumour_area, mask_threshold)[0].cpu())
    finally:
        network.train(was_training)
    kept_pairs = torch.cat(kept)
    on_border = tumour_on_border(kept_pairs[:, network.image_channels :])
    border_fraction = float(on_border.float().mean()) if len(kept_pairs) else math.nan
    return PriorAcceptance(kept_pairs, num_draws, len(kept_pairs) / num_draws, border_fraction)
