"""PatchGAN discriminator on joint (image, tumour-mask) pairs."""

from __future__ import annotations

import torch
from monai.networks.nets import PatchDiscriminator

__all__ = ["PairDiscriminator"]


class PairDiscriminator(PatchDiscriminator):
    """
    MONAI's :class:`~monai.networks.nets.PatchDiscriminator` configured as the dHVAE paper's PatchGAN, judging the
    image and its mask jointly (``method.md`` §5.2): a stride-2 4x4 convolution without normalisation, then
    ``num_layers_d`` BatchNorm + LeakyReLU(0.2) convolutions (stride 2 except the last), then a 4x4 convolution to one
    logit per patch (14 x 14 for 128 x 128 slices). Weights start from ``N(0, 0.02)`` as in pix2pix.

    ``forward`` returns MONAI's list of intermediate feature maps with the patch logits last; the features serve the
    offline perceptual loss (:class:`dhvae_monai.losses.DiscriminatorFeatureLoss`).

    Args:
        image_channels: ``C_img``.
        mask_channels: ``C_mask``.
        channels: filters of the first convolution (doubled at each following layer).
        num_layers_d: number of normalised convolution layers.

    Example::

        discriminator = PairDiscriminator(image_channels=1, mask_channels=1)
        logits = discriminator.logits(torch.rand(2, 2, 128, 128))  # [2, 1, 14, 14]
    """

    def __init__(self, image_channels: int = 1, mask_channels: int = 1, channels: int = 64, num_layers_d: int = 3) -> None:
        super().__init__(
            spatial_dims=2,
            channels=channels,
            in_channels=image_channels + mask_channels,
            out_channels=1,
            num_layers_d=num_layers_d,
            kernel_size=4,
            norm="BATCH",
        )

    def logits(self, pair: torch.Tensor) -> torch.Tensor:
        """Patch logits ``[B, 1, h, w]`` of a batch of pairs (the last element of ``forward``)."""
        return self(pair)[-1]
