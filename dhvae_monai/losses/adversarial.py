"""Adversarial objectives of the dHVAE regulariser and the VQGAN-style adaptive weight."""

from __future__ import annotations

import torch

__all__ = ["AdversarialLoss", "adaptive_adversarial_weight"]

OBJECTIVES = ("hinge", "least_squares")


class AdversarialLoss:
    """
    Generator and discriminator terms on raw PatchGAN logits.

    - ``"hinge"`` (authors' code): ``L_D = 0.5 [mean relu(1 - D(x)) + mean relu(1 + D(x_hat))]``,
      ``L_G = -mean D(x_hat)``.
    - ``"least_squares"`` (LSGAN): ``L_D = 0.5 [mean (D(x) - 1)^2 + mean D(x_hat)^2]``,
      ``L_G = 0.5 mean (D(x_hat) - 1)^2``.

    MONAI's ``PatchAdversarialLoss`` is not reused because its hinge passes the logits through ``tanh`` and its
    generator branch differs from the code being reproduced (``method.md`` §12).

    Args:
        objective: ``"hinge"`` or ``"least_squares"``.

    Raises:
        ValueError: an unknown objective.

    Example::

        adversarial = AdversarialLoss("hinge")
        d_loss = adversarial.discriminator_loss(real_logits, fake_logits.detach())
        g_loss = adversarial.generator_loss(fake_logits)
    """

    def __init__(self, objective: str = "hinge") -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"adversarial objective must be one of {OBJECTIVES}, got {objective!r}.")
        self.objective = objective

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss of the discriminator on real pairs and (detached) reconstructions."""
        if self.objective == "hinge":
            return 0.5 * (torch.relu(1.0 - real_logits).mean() + torch.relu(1.0 + fake_logits).mean())
        return 0.5 * ((real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean())

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss of the generator, whose reconstructions should be judged real."""
        if self.objective == "hinge":
            return -fake_logits.mean()
        return 0.5 * (fake_logits - 1.0).pow(2).mean()


def adaptive_adversarial_weight(
    reconstruction_gradient: torch.Tensor, generator_gradient: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """
    ``lambda = ||grad_W L_rec|| / (||grad_W L_G|| + 1e-4)``, clamped to ``[0, max_weight]`` and detached (VQGAN).

    Balances the adversarial term against the reconstruction term at the decoder's output layer ``W``, so neither
    dominates whatever their raw scales.

    Args:
        reconstruction_gradient: ``grad_W L_rec`` (see :meth:`DHVAE.output_layer_gradient`).
        generator_gradient: ``grad_W L_G``.
        max_weight: upper clamp.

    Returns:
        a detached scalar tensor.

    Example::

        weight = adaptive_adversarial_weight(net.output_layer_gradient(rec, out), net.output_layer_gradient(g, out))
    """
    weight = reconstruction_gradient.norm() / (generator_gradient.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
