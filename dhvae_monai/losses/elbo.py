"""Negative ELBO of the Hamiltonian VAE for a joint (image, mask) pair."""

from __future__ import annotations

import torch
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from dhvae_monai.networks.nets.dhvae import DHVAEOutput, standard_normal_log_prob

__all__ = ["HamiltonianELBOLoss"]


class HamiltonianELBOLoss(_Loss):
    """
    Negative evidence lower bound of the HVAE (``method.md`` §5.1), one reparameterised sample per pair.

    ``ELBO = log p(x, m | z_K) + log N(z_K; 0, I) + log N(rho_K; 0, I) - log q(z_0 | x, m) - log N(gamma; 0, I)``

    with ``log q(z_0 | x, m) = log N(eps_0; 0, I) - 1/2 sum log sigma^2``. The flow is volume preserving in
    ``(z_0, gamma)`` once ``rho_0 = gamma / sqrt(beta_0)`` is accounted for, so no Jacobian term appears and the
    bound stays valid, with every term differentiable, when the step size or ``beta_0`` are learned (their gradients
    flow through ``z_K`` and ``rho_K``). The ``gamma`` term does not depend on any parameter; it is kept so that the
    value is the bound itself. With ``K = 0`` the momentum terms vanish and this is the VAE ELBO, estimated by
    Monte Carlo or, with ``analytic_kl=True``, with the closed-form KL divergence as in the authors' VAE.

    Args:
        analytic_kl: use ``KL(q(z|x, m) || N(0, I))`` in closed form; only valid without a flow (``K = 0``).
        reduction: ``"mean"`` (default, the batch average of per-sample losses), ``"sum"`` or ``"none"``.

    Raises:
        ValueError: ``analytic_kl=True`` on the output of a model with a flow.

    Example::

        loss = HamiltonianELBOLoss()(net.forward_flow(pair))
    """

    def __init__(self, analytic_kl: bool = False, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.analytic_kl = analytic_kl

    def elbo(self, output: DHVAEOutput) -> torch.Tensor:
        """Per-sample ELBO estimate, shape ``[B]``."""
        if self.analytic_kl:
            if output.momentum is not None:
                raise ValueError("analytic_kl=True needs a model without a flow (leapfrog_steps=0).")
            kl = 0.5 * (output.z_mu.pow(2) + output.z_log_var.exp() - 1.0 - output.z_log_var).flatten(1).sum(1)
            return output.log_likelihood - kl
        log_posterior = standard_normal_log_prob(output.posterior_noise) - 0.5 * output.z_log_var.flatten(1).sum(1)
        elbo = output.log_likelihood + standard_normal_log_prob(output.z_k) - log_posterior
        if output.momentum is not None:
            elbo = elbo + standard_normal_log_prob(output.momentum) - standard_normal_log_prob(output.momentum_noise)
        return elbo

    def forward(self, output: DHVAEOutput) -> torch.Tensor:
        """
        Args:
            output: :meth:`DHVAE.forward_flow` of the batch.

        Returns:
            the negative ELBO, reduced over the batch as ``reduction`` says.
        """
        loss = -self.elbo(output)
        if self.reduction == LossReduction.MEAN.value:
            return loss.mean()
        if self.reduction == LossReduction.SUM.value:
            return loss.sum()
        return loss
