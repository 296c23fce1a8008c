from __future__ import annotations

import pytest
import torch

from dhvae_monai.networks.blocks import HamiltonianFlow, tempering_schedule


def quadratic_potential(precision: torch.Tensor):
    """U(z) = 0.5 z^T A z per sample, counting its evaluations."""
    calls = []

    def potential(z: torch.Tensor):
        calls.append(1)
        return 0.5 * torch.einsum("bi,ij,bj->b", z, precision, z), None

    return potential, calls


PRECISION = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=torch.float64)


def test_schedule_published_values():
    # method.md §4: K = 3, beta_0 = 0.09 (code's 0.3 = sqrt(beta_0))
    sqrt_beta = tempering_schedule(3, 0.3)
    torch.testing.assert_close(sqrt_beta, torch.tensor([0.3, 0.3253, 0.4355, 1.0]), atol=1e-4, rtol=0)
    factors = sqrt_beta[:-1] / sqrt_beta[1:]
    torch.testing.assert_close(factors, torch.tensor([0.9222, 0.7470, 0.4355]), atol=1e-4, rtol=0)
    assert float(factors.prod()) == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("steps,beta0", [(1, 0.5), (5, 0.01), (10, 0.09)])
def test_schedule_ends_at_one_and_increases(steps, beta0):
    sqrt_beta = tempering_schedule(steps, beta0**0.5)
    assert float(sqrt_beta[-1]) == pytest.approx(1.0)
    assert float(sqrt_beta[0]) == pytest.approx(beta0**0.5)
    assert torch.all(sqrt_beta[1:] > sqrt_beta[:-1])


def test_flow_is_time_reversible_without_tempering():
    flow = HamiltonianFlow(leapfrog_steps=7, step_size=0.2, initial_inverse_temperature=1.0).double()
    potential, _ = quadratic_potential(PRECISION)
    z0, rho0 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    forward = flow(z0, rho0, potential)
    assert not torch.allclose(forward.position, z0)
    backward = flow(forward.position, -forward.momentum, potential)
    torch.testing.assert_close(backward.position, z0)
    torch.testing.assert_close(backward.momentum, -rho0)


def _flow_jacobian_determinant(flow: HamiltonianFlow) -> float:
    potential, _ = quadratic_potential(PRECISION)

    def flow_map(state: torch.Tensor) -> torch.Tensor:
        result = flow(state[None, :3], state[None, 3:], potential)
        return torch.cat([result.position[0], result.momentum[0]])

    jacobian = torch.autograd.functional.jacobian(flow_map, torch.randn(6, dtype=torch.float64))
    return float(torch.linalg.det(jacobian))


def test_leapfrog_preserves_volume():
    flow = HamiltonianFlow(leapfrog_steps=5, step_size=0.3, initial_inverse_temperature=1.0).double()
    assert _flow_jacobian_determinant(flow) == pytest.approx(1.0, abs=1e-9)


def test_tempered_flow_preserves_volume_in_initial_noise():
    # rho_0 = gamma / sqrt(beta_0) and the rescalings cancel: the map (z_0, gamma) -> (z_K, rho_K) has unit
    # Jacobian, which is why the ELBO needs no log-determinant term.
    flow = HamiltonianFlow(leapfrog_steps=3, step_size=0.3, initial_inverse_temperature=0.09).double()
    assert _flow_jacobian_determinant(flow) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_gradient_reuse_evaluates_potential_k_plus_one_times(steps):
    flow = HamiltonianFlow(leapfrog_steps=steps)
    potential, calls = quadratic_potential(PRECISION.float())
    flow(torch.randn(2, 3), torch.randn(2, 3), potential)
    assert len(calls) == steps + 1


def test_zero_steps_is_identity():
    flow = HamiltonianFlow(leapfrog_steps=0)
    potential, calls = quadratic_potential(PRECISION.float())
    z0 = torch.randn(2, 3)
    state = flow(z0, None, potential)
    assert state.position is z0 and state.momentum is None and len(calls) == 1


def test_evaluation_mode_works_without_autograd_and_returns_detached():
    flow = HamiltonianFlow(leapfrog_steps=3, step_size=0.1)
    potential, _ = quadratic_potential(PRECISION.float())
    with torch.no_grad():
        state = flow(torch.randn(2, 3), torch.randn(2, 3), potential)
    assert not state.position.requires_grad and not state.momentum.requires_grad


def test_learnable_parameters_receive_gradients():
    flow = HamiltonianFlow(leapfrog_steps=3, step_size=0.1, learn_step_size=True, learn_temperature=True, latent_shape=(3,))
    potential, _ = quadratic_potential(PRECISION.float())
    state = flow(torch.randn(4, 3), torch.randn(4, 3), potential)
    (state.position.pow(2).sum() + state.momentum.pow(2).sum()).backward()
    assert flow.log_step_size.shape == (3,)
    assert flow.log_step_size.grad.abs().sum() > 0
    assert flow.sqrt_beta0_logit.grad.abs() > 0


@pytest.mark.parametrize(
    "kwargs", [{"leapfrog_steps": -1}, {"step_size": 0.0}, {"initial_inverse_temperature": 0.0},
               {"initial_inverse_temperature": 1.5}, {"initial_inverse_temperature": 1.0, "learn_temperature": True}]
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        HamiltonianFlow(**kwargs)
