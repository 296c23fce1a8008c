"""How well a generator reconstructs real slices: image PSNR and SSIM, mask Dice."""

from __future__ import annotations

from typing import Sequence

import torch
from monai.metrics import DiceMetric, PSNRMetric, SSIMMetric
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dhvae_monai.engines.prepare_batch import PreparePairBatch

__all__ = ["reconstruction_scores"]


@torch.no_grad()
def reconstruction_scores(
    network: nn.Module,
    slices: Dataset | Sequence[dict],
    image_channels: int,
    mask_threshold: float = 0.5,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """
    Reconstruct real (image, mask) slices with a generator's forward pass and score the reconstructions as the
    ``train_generator`` stage's validation does: PSNR and SSIM of the image channels (MONAI's
    :class:`~monai.metrics.PSNRMetric` and :class:`~monai.metrics.SSIMMetric`, data range 1), and Dice of the mask
    channels binarised at ``mask_threshold`` (:class:`~monai.metrics.DiceMetric`), each averaged over slices.

    A :class:`~dhvae_monai.networks.nets.DHVAE`'s forward pass encodes, samples the posterior and runs the
    Hamiltonian flow; it is stochastic, so the global random state is seeded here (and restored afterwards).

    Args:
        network: maps pairs ``[B, C_img + C_mask, H, W]`` to reconstructions of the same shape (image in [0, 1],
            mask probabilities); put in eval mode for the call.
        slices: items with ``"image"`` ``[C_img, H, W]`` and ``"label"`` ``[C_mask, H, W]``, e.g. a
            :class:`~dhvae_monai.data.TumourSliceDataset`.
        image_channels: ``C_img``.
        mask_threshold: probability above which a reconstructed mask pixel is tumour.
        batch_size: slices per forward pass.
        seed: seed of the forward pass's noise.

    Returns:
        ``{"psnr": dB, "ssim", "mask_dice", "num_slices"}``.

    Raises:
        ValueError: ``slices`` is empty.

    Example::

        scores = reconstruction_scores(generator, validation_slices, image_channels=1)
    """
    if len(slices) == 0:
        raise ValueError("no slices to reconstruct: the dataset is empty.")
    device = next(network.parameters()).device
    prepare = PreparePairBatch()
    psnr, ssim = PSNRMetric(max_val=1.0), SSIMMetric(spatial_dims=2, data_range=1.0)
    dice = DiceMetric(include_background=True)
    was_training = network.training
    network.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for batch in DataLoader(slices, batch_size=batch_size, shuffle=False):
                pair, _ = prepare(batch, device)
                reconstruction = network(pair)
                psnr(y_pred=reconstruction[:, :image_channels], y=pair[:, :image_channels])
                ssim(y_pred=reconstruction[:, :image_channels], y=pair[:, :image_channels])
                mask = (reconstruction[:, image_channels:] > mask_threshold).to(pair.dtype)
                dice(y_pred=mask, y=pair[:, image_channels:])
    finally:
        network.train(was_training)
    return {
        "psnr": float(psnr.aggregate()),
        "ssim": float(ssim.aggregate()),
        "mask_dice": float(dice.aggregate()),
        "num_slices": len(slices),
    }
