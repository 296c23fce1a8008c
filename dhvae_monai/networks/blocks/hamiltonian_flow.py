"""Tempered Hamiltonian flow of the HVAE (Caterini, Doucet and Sejdinovic, NeurIPS 2018)."""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import nn

__all__ = ["HamiltonianFlow", "FlowState", "tempering_schedule"]

Potential = Callable[[torch.Tensor], "tuple[torch.Tensor, Any]"]


def tempering_schedule(leapfrog_steps: int, sqrt_beta0: torch.Tensor | float) -> torch.Tensor:
    """
    Quadratic tempering schedule of the HVAE, as square roots of the inverse temperatures.

    ``sqrt(beta_k) = 1 / ((1 - 1/sqrt(beta_0)) * (k/K)**2 + 1/sqrt(beta_0))`` for ``k = 0..K``, so that
    ``beta_K = 1``. With ``K = 3`` and ``beta_0 = 0.09`` this gives ``0.3, 0.3253, 0.4355, 1.0``.

    Args:
        leapfrog_steps: number of leapfrog steps ``K`` (>= 1).
        sqrt_beta0: square root of the initial inverse temperature ``beta_0`` in (0, 1]; a tensor keeps the
            schedule differentiable with respect to it.

    Returns:
        tensor of shape ``[K + 1]`` holding ``sqrt(beta_0), ..., sqrt(beta_K)``.

    Example::

        tempering_schedule(3, 0.3)  # tensor([0.3000, 0.3253, 0.4355, 1.0000])
    """
    if leapfrog_steps < 1:
        raise ValueError(f"leapfrog_steps must be >= 1 for a tempering schedule, got {leapfrog_steps}.")
    if not isinstance(sqrt_beta0, torch.Tensor):
        sqrt_beta0 = torch.tensor(sqrt_beta0, dtype=torch.get_default_dtype())
    progress = (torch.arange(leapfrog_steps + 1, device=sqrt_beta0.device, dtype=sqrt_beta0.dtype) / leapfrog_steps) ** 2
    inverse_sqrt_beta0 = 1.0 / sqrt_beta0
    return 1.0 / ((1.0 - inverse_sqrt_beta0) * progress + inverse_sqrt_beta0)


class FlowState(NamedTuple):
    """End point of the flow: ``z_K``, ``rho_K`` (None for ``K = 0``), and the potential's value and extras there."""

    position: torch.Tensor
    momentum: torch.Tensor | None
    potential: torch.Tensor
    extras: Any


class HamiltonianFlow(nn.Module):
    """
    ``K`` leapfrog steps of Hamiltonian dynamics on a potential ``U(z)``, with quadratic tempering of the momentum.

    Starting from ``(z_0, rho_0 = gamma / sqrt(beta_0))`` with ``gamma ~ N(0, I)``, each step is a leapfrog move
    followed by the momentum rescaling ``rho_k = sqrt(beta_{k-1} / beta_k) * rho_tilde``. The flow is deterministic
    given ``(z_0, gamma)`` and differentiable (the gradients of ``U`` are taken with ``create_graph=True`` while
    autograd is recording), so the ELBO can be optimised through it.

    The gradient of ``U`` at the end of one step is the one the next step starts with, so the flow evaluates the
    potential ``K + 1`` times instead of ``2K``; the last evaluation is at ``z_K`` and its extras (e.g. the decoder
    output) are returned for reuse by the caller.

    Args:
        leapfrog_steps: number of leapfrog steps ``K``; 0 makes the flow the identity (a plain VAE).
        step_size: leapfrog step size ``epsilon``; 0.001 in the authors' code.
        initial_inverse_temperature: ``beta_0`` in (0, 1]. The authors' config value 0.3 is ``sqrt(beta_0)``, so
            the default is 0.09.
        learn_step_size: make ``epsilon`` a learnable, positive parameter (one per latent dimension when
            ``latent_shape`` is given, as in the HVAE paper, else a scalar).
        learn_temperature: make ``beta_0`` a learnable parameter in (0, 1).
        latent_shape: shape of one latent sample, without the batch dimension.

    Raises:
        ValueError: negative ``leapfrog_steps``, non-positive ``step_size`` or ``beta_0`` outside (0, 1].

    Example::

        flow = HamiltonianFlow(leapfrog_steps=3)
        potential = lambda z: (0.5 * z.pow(2).flatten(1).sum(1), None)
        state = flow(torch.randn(4, 8), torch.randn(4, 8), potential)
    """

    def __init__(
        self,
        leapfrog_steps: int = 3,
        step_size: float = 1e-3,
        initial_inverse_temperature: float = 0.09,
        learn_step_size: bool = False,
        learn_temperature: bool = False,
        latent_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if leapfrog_steps < 0:
            raise ValueError(f"leapfrog_steps must be >= 0, got {leapfrog_steps}.")
        if step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}.")
        if not 0.0 < initial_inverse_temperature <= 1.0:
            raise ValueError(
                f"initial_inverse_temperature (beta_0) must be in (0, 1], got {initial_inverse_temperature}."
            )
        if learn_temperature and initial_inverse_temperature == 1.0:
            raise ValueError("a learnable beta_0 must start below 1 (its parameterisation is a sigmoid).")
        self.leapfrog_steps = leapfrog_steps

        log_step_size = torch.full(tuple(latent_shape) if (learn_step_size and latent_shape) else (), math.log(step_size))
        if learn_step_size:
            self.log_step_size = nn.Parameter(log_step_size)
        else:
            self.register_buffer("log_step_size", log_step_size)

        # sqrt(beta_0) is stored as a logit so a learnable beta_0 stays in (0, 1)
        sqrt_beta0_logit = torch.logit(torch.tensor(math.sqrt(initial_inverse_temperature)))
        if learn_temperature:
            self.sqrt_beta0_logit = nn.Parameter(sqrt_beta0_logit)
        else:
            self.register_buffer("sqrt_beta0_logit", sqrt_beta0_logit)

    @property
    def step_size(self) -> torch.Tensor:
        """The leapfrog step size ``epsilon`` (a scalar or one value per latent dimension)."""
        return self.log_step_size.exp()

    @property
    def sqrt_beta0(self) -> torch.Tensor:
        """Square root of the initial inverse temperature ``beta_0``."""
        return torch.sigmoid(self.sqrt_beta0_logit)

    def schedule(self) -> torch.Tensor:
        """``sqrt(beta_k)`` for ``k = 0..K`` (see :func:`tempering_schedule`)."""
        return tempering_schedule(self.leapfrog_steps, self.sqrt_beta0)

    def forward(
        self, initial_position: torch.Tensor, momentum_noise: torch.Tensor | None, potential: Potential
    ) -> FlowState:
        """
        Run the flow from ``z_0`` with initial momentum ``rho_0 = momentum_noise / sqrt(beta_0)``.

        Args:
            initial_position: ``z_0``, shape ``[B, ...]``.
            momentum_noise: ``gamma ~ N(0, I)``, same shape as ``z_0``; unused (may be None) when ``K = 0``.
            potential: callable mapping ``z`` to ``(U(z) of shape [B], extras)``; samples must be independent (no
                batch-coupled layers such as BatchNorm in training mode), so the gradient of ``U.sum()`` is each
                sample's own gradient.

        Returns:
            the :class:`FlowState` at ``z_K``. When autograd is not recording (evaluation), the gradients of ``U``
            are still computed but no graph is kept, and the returned tensors are detached.
        """
        if self.leapfrog_steps == 0:
            energy, extras = potential(initial_position)
            return FlowState(initial_position, None, energy, extras)

        if momentum_noise is None:
            raise ValueError("momentum_noise is required when leapfrog_steps > 0.")
        keep_graph = torch.is_grad_enabled()
        step_size = self.step_size
        sqrt_beta = self.schedule()
        with torch.enable_grad():
            position = initial_position
            if not keep_graph or not position.requires_grad:
                position = position.detach().requires_grad_(True)
            energy, extras, gradient = self._evaluate(potential, position, keep_graph)
            momentum = momentum_noise / sqrt_beta[0]
            for k in range(1, self.leapfrog_steps + 1):
                momentum = momentum - 0.5 * step_size * gradient
                position = position + step_size * momentum
                if not keep_graph:
                    position = position.detach().requires_grad_(True)
                energy, extras, gradient = self._evaluate(potential, position, keep_graph)
                momentum = (momentum - 0.5 * step_size * gradient) * (sqrt_beta[k - 1] / sqrt_beta[k])
        if not keep_graph:
            position, momentum, energy = position.detach(), momentum.detach(), energy.detach()
            extras = _detach(extras)
        return FlowState(position, momentum, energy, extras)

    @staticmethod
    def _evaluate(
        potential: Potential, position: torch.Tensor, keep_graph: bool
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        energy, extras = potential(position)
        (gradient,) = torch.autograd.grad(energy.sum(), position, create_graph=keep_graph)
        return energy, extras, gradient


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detach(v) for v in value)
    return value
