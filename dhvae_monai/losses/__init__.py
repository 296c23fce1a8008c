"""Losses of the dHVAE: the HVAE ELBO, the discriminative regulariser and their combination."""

from __future__ import annotations

from dhvae_monai.losses.adversarial import AdversarialLoss, adaptive_adversarial_weight
from dhvae_monai.losses.dhvae_loss import DHVAELoss
from dhvae_monai.losses.elbo import HamiltonianELBOLoss
from dhvae_monai.losses.perceptual import DiscriminatorFeatureLoss, PretrainedPerceptualLoss

__all__ = [
    "AdversarialLoss",
    "DHVAELoss",
    "DiscriminatorFeatureLoss",
    "HamiltonianELBOLoss",
    "PretrainedPerceptualLoss",
    "adaptive_adversarial_weight",
]
