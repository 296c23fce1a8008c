"""Perceptual losses for the dHVAE regulariser: offline by default, pretrained LPIPS as an opt-in."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

__all__ = ["DiscriminatorFeatureLoss", "PretrainedPerceptualLoss"]

# torchvision checkpoints that `lpips` (through MONAI's PerceptualLoss) loads for each backbone
LPIPS_BACKBONE_WEIGHTS = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


class DiscriminatorFeatureLoss(nn.Module):
    """
    LPIPS-style distance computed on the discriminator's own feature maps, so it needs no downloaded weights.

    For each intermediate feature map of :class:`~dhvae_monai.networks.nets.PairDiscriminator` (all but the final
    logits), features are unit-normalised over channels, and the squared difference between real and reconstructed
    pairs is averaged over space and summed over layers, as LPIPS does with an ImageNet network. Before the
    adversarial term switches on, the discriminator is a fixed random multi-scale filter bank (random convolutional
    features are a known, usable perceptual metric); afterwards its features are tuned to what separates real pairs
    from reconstructions.

    Example::

        features_real = [f.detach() for f in discriminator(pair)[:-1]]
        features_fake = discriminator(reconstruction)[:-1]
        loss = DiscriminatorFeatureLoss()(features_fake, features_real)  # [B]
    """

    def forward(self, fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            fake_features: feature maps of the reconstructions, each ``[B, C_l, H_l, W_l]``.
            real_features: feature maps of the real pairs (treated as targets: pass them detached).

        Returns:
            per-sample distance, shape ``[B]``.

        Raises:
            ValueError: the two lists differ in length.
        """
        if len(fake_features) != len(real_features) or not fake_features:
            raise ValueError(
                f"expected the same non-zero number of feature maps, got {len(fake_features)} and {len(real_features)}."
            )
        distance = 0.0
        for fake, real in zip(fake_features, real_features):
            difference = _unit_normalise(fake) - _unit_normalise(real)
            distance = distance + difference.pow(2).sum(1).flatten(1).mean(1)
        return distance


def _unit_normalise(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return features / (features.pow(2).sum(1, keepdim=True).sqrt() + eps)


class PretrainedPerceptualLoss(nn.Module):
    """
    Opt-in LPIPS perceptual loss with ImageNet weights (MONAI's :class:`~monai.losses.PerceptualLoss`), applied to
    every channel of the pair separately (LPIPS takes 1 or 3 channels) and summed over channels.

    Nothing is downloaded: the `lpips` package must be installed (it pulls torchvision) and the torchvision backbone
    checkpoint must already be in torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``), e.g. copied there
    from a machine with internet. Otherwise construction fails with a message naming the missing piece.

    Args:
        network_type: LPIPS backbone, ``"alex"``, ``"vgg"`` (the authors' choice) or ``"squeeze"``.

    Raises:
        ValueError: an unsupported ``network_type``.
        RuntimeError: `lpips` is not installed or the backbone weights are not cached.

    Example::

        perceptual = PretrainedPerceptualLoss("vgg")
        loss = perceptual(reconstruction, pair)  # scalar, batch mean
    """

    def __init__(self, network_type: str = "vgg") -> None:
        super().__init__()
        if network_type not in LPIPS_BACKBONE_WEIGHTS:
            raise ValueError(
                f"network_type must be one of {sorted(LPIPS_BACKBONE_WEIGHTS)}, got {network_type!r}; other perceptual "
                "networks can be passed to DHVAELoss(perceptual=...) as any module mapping (reconstruction, pair) to "
                "a scalar."
            )
        if importlib.util.find_spec("lpips") is None:
            raise RuntimeError(
                "PretrainedPerceptualLoss needs the `lpips` package (pip install lpips; it installs torchvision). "
                "Use perceptual='discriminator' (the default) to train without pretrained weights."
            )
        weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_WEIGHTS[network_type]
        if not weights.is_file():
            raise RuntimeError(
                f"pretrained {network_type!r} weights not found at {weights}: this project never downloads at run "
                f"time. Copy {weights.name} there (or set TORCH_HOME), or use perceptual='discriminator'."
            )
        from monai.losses import PerceptualLoss

        self.loss = PerceptualLoss(spatial_dims=2, network_type=network_type)

    def forward(self, reconstruction: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """Sum over channels of the batch-mean LPIPS distance between ``reconstruction`` and ``pair``."""
        return sum(
            self.loss(reconstruction[:, c : c + 1], pair[:, c : c + 1]) for c in range(pair.shape[1])
        )
