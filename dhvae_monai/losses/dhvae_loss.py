"""The dHVAE objective: (1 - alpha) * negative HVAE ELBO + alpha * discriminative regulariser."""

from __future__ import annotations

import torch
from typing import Callable

from torch import nn

from dhvae_monai.losses.adversarial import AdversarialLoss, adaptive_adversarial_weight
from dhvae_monai.losses.elbo import HamiltonianELBOLoss
from dhvae_monai.losses.perceptual import DiscriminatorFeatureLoss
from dhvae_monai.networks.nets.dhvae import DHVAEOutput

__all__ = ["DHVAELoss"]


class DHVAELoss(nn.Module):
    """
    Generator objective of the discriminative Hamiltonian VAE (``method.md`` §5) and the discriminator's loss.

    ``L = (1 - alpha) * L_HVAE + alpha * L_reg`` with ``L_HVAE`` the negative ELBO (:class:`HamiltonianELBOLoss`) and
    ``L_reg = L_rec + lambda * adversarial_weight * L_G``, where, per pair summed over pixels and averaged over the
    batch, ``L_rec = pixel_weight * |x_hat - x| + C*H*W * perceptual_weight * perceptual(x_hat, x)`` (the ``C*H*W``
    factor puts the per-sample perceptual distance on the scale of the pixel sum, as in the authors' code),
    ``L_G`` is the adversarial generator term and ``lambda`` the adaptive weight
    (:func:`adaptive_adversarial_weight`). The adversarial term is added only when the caller says it is active
    (the trainer switches it on after ``discriminator_start`` iterations).

    ``alpha = 0`` gives the HVAE baseline (nothing but the ELBO is computed); together with ``leapfrog_steps=0`` in
    the network, the VAE baseline.

    Args:
        regulariser_weight: ``alpha`` in [0, 1]. 0.05 is the value of the authors' config, which their notebooks
            label "alpha = 0.01" in the paper's notation (``method.md`` §5.3); we use the config's convex combination.
        pixel_weight: weight of the pixel L1 term.
        perceptual_weight: weight of the perceptual term.
        adversarial_weight: extra factor on the adaptive weight (``disc_weight`` in the authors' code).
        adversarial_objective: ``"hinge"`` (authors' code) or ``"least_squares"``.
        perceptual: ``"discriminator"`` (default, offline: :class:`DiscriminatorFeatureLoss` on the discriminator's
            features), ``"none"``, or a module mapping ``(reconstruction, pair)`` to a scalar batch mean, such as
            :class:`PretrainedPerceptualLoss`.
        max_adaptive_weight: upper clamp of ``lambda``.
        analytic_kl: closed-form KL in the ELBO (VAE only, see :class:`HamiltonianELBOLoss`).

    Raises:
        ValueError: ``alpha`` outside [0, 1], negative weights, or an unknown ``perceptual`` name.

    Example::

        loss_function = DHVAELoss(regulariser_weight=0.05)
        output = net.forward_flow(pair)
        terms = loss_function(output, pair, discriminator, adversarial=True,
                              output_layer_gradient=lambda loss: net.output_layer_gradient(loss, output))
        terms["loss"].backward()
    """

    def __init__(
        self,
        regulariser_weight: float = 0.05,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        adversarial_objective: str = "hinge",
        perceptual: str | nn.Module = "discriminator",
        max_adaptive_weight: float = 1e4,
        analytic_kl: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= regulariser_weight <= 1.0:
            raise ValueError(f"regulariser_weight (alpha) must be in [0, 1], got {regulariser_weight}.")
        if min(pixel_weight, perceptual_weight, adversarial_weight) < 0:
            raise ValueError("pixel_weight, perceptual_weight and adversarial_weight must be >= 0.")
        if isinstance(perceptual, str) and perceptual not in ("discriminator", "none"):
            raise ValueError(f"perceptual must be 'discriminator', 'none' or a module, got {perceptual!r}.")
        self.regulariser_weight = regulariser_weight
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight
        self.adversarial_weight = adversarial_weight
        self.max_adaptive_weight = max_adaptive_weight
        self.elbo_loss = HamiltonianELBOLoss(analytic_kl=analytic_kl)
        self.adversarial = AdversarialLoss(adversarial_objective)
        self.perceptual = perceptual
        self.feature_loss = DiscriminatorFeatureLoss()

    @property
    def uses_discriminator(self) -> bool:
        """Whether the objective can involve the discriminator at all (``alpha > 0``)."""
        return self.regulariser_weight > 0

    def forward(
        self,
        output: DHVAEOutput,
        pair: torch.Tensor,
        discriminator: nn.Module | None = None,
        adversarial: bool = False,
        output_layer_gradient: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            output: :meth:`DHVAE.forward_flow` of ``pair``.
            pair: the real pairs ``[B, C_img + C_mask, H, W]``.
            discriminator: a :class:`PairDiscriminator` (needed for the adversarial term and the default perceptual
                loss).
            adversarial: add the adversarial term (after the discriminator has started).
            output_layer_gradient: maps a scalar loss to its gradient with respect to the decoder's output-layer
                weight, for the adaptive weight (needed when adversarial): :meth:`DHVAE.output_layer_gradient` bound
                to ``output``, or ``lambda loss: torch.autograd.grad(loss, weight, retain_graph=True)[0]``.

        Returns:
            the terms, each a scalar: ``loss`` (to minimise), ``elbo_loss`` and, when ``alpha > 0``, ``pixel_loss``,
            ``perceptual_loss``, ``reconstruction_loss``, ``regulariser_loss``, and with the adversarial term
            ``generator_adversarial_loss`` and ``adaptive_weight``.

        Raises:
            ValueError: a discriminator or ``output_layer_gradient`` is needed and missing.
        """
        elbo_loss = self.elbo_loss(output)
        terms = {"elbo_loss": elbo_loss}
        if not self.uses_discriminator:
            terms["loss"] = elbo_loss
            return terms
        needs_discriminator = adversarial or self.perceptual == "discriminator"
        if needs_discriminator and discriminator is None:
            raise ValueError("DHVAELoss needs the discriminator for the adversarial term or perceptual='discriminator'.")
        reconstruction = output.reconstruction
        fake_features = discriminator(reconstruction) if needs_discriminator else None

        pixel_loss = (reconstruction - pair).abs().flatten(1).sum(1).mean()
        if self.perceptual == "discriminator":
            with torch.no_grad():
                real_features = discriminator(pair)
            perceptual_loss = self.feature_loss(fake_features[:-1], real_features[:-1]).mean()
        elif self.perceptual == "none":
            perceptual_loss = torch.zeros_like(pixel_loss)
        else:
            perceptual_loss = self.perceptual(reconstruction, pair)
        pixels_per_pair = pair[0].numel()
        reconstruction_loss = self.pixel_weight * pixel_loss + pixels_per_pair * self.perceptual_weight * perceptual_loss
        terms.update(pixel_loss=pixel_loss, perceptual_loss=perceptual_loss, reconstruction_loss=reconstruction_loss)

        regulariser_loss = reconstruction_loss
        if adversarial:
            if output_layer_gradient is None:
                raise ValueError("the adaptive adversarial weight needs output_layer_gradient (DHVAE.output_layer_gradient).")
            generator_loss = self.adversarial.generator_loss(fake_features[-1])
            adaptive_weight = self.adversarial_weight * adaptive_adversarial_weight(
                output_layer_gradient(reconstruction_loss), output_layer_gradient(generator_loss), self.max_adaptive_weight
            )
            regulariser_loss = reconstruction_loss + adaptive_weight * generator_loss
            terms.update(generator_adversarial_loss=generator_loss, adaptive_weight=adaptive_weight)
        terms["regulariser_loss"] = regulariser_loss
        terms["loss"] = (1.0 - self.regulariser_weight) * elbo_loss + self.regulariser_weight * regulariser_loss
        return terms

    def discriminator_loss(
        self, discriminator: nn.Module, pair: torch.Tensor, reconstruction: torch.Tensor
    ) -> torch.Tensor:
        """
        Loss of the discriminator on real pairs against (detached) reconstructions after the flow.

        Args:
            discriminator: the :class:`PairDiscriminator`.
            pair: real pairs.
            reconstruction: the generator's reconstructions of ``pair`` (detached here).

        Returns:
            a scalar.
        """
        real_logits = discriminator(pair)[-1]
        fake_logits = discriminator(reconstruction.detach())[-1]
        return self.adversarial.discriminator_loss(real_logits, fake_logits)
