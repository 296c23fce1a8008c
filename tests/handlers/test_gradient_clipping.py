from __future__ import annotations

import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents

from dhvae_monai.handlers import GradientNormClipper


def _one_step(loss_scale: float, max_norm: float | None):
    """One SGD step (lr 1) of a bias-free linear layer from zero weights; returns (weight change, grad norms seen)."""
    net = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    data = [{"image": torch.ones(2, 4), "label": torch.ones(2, 1)}]
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=1, train_data_loader=data, network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
        loss_function=lambda prediction, target: loss_scale * torch.nn.functional.mse_loss(prediction, target),
    )
    if max_norm is not None:
        GradientNormClipper(network=net, max_norm=max_norm).attach(trainer)
    norms = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda engine: norms.append(float(net.weight.grad.norm())))
    trainer.run()
    return net.weight.detach().clone(), norms


def test_large_gradients_are_clipped_before_the_optimiser_step():
    # loss 100 * (w.x - 1)^2 at w = 0: gradient -200 per weight, norm 400
    unclipped, norms = _one_step(loss_scale=100.0, max_norm=None)
    assert norms == [pytest.approx(400.0)]
    torch.testing.assert_close(unclipped, torch.full((1, 4), 200.0))
    clipped, norms = _one_step(loss_scale=100.0, max_norm=2.0)
    assert norms == [pytest.approx(2.0, rel=1e-4)]
    # the step used the clipped gradient: same direction, norm 2
    torch.testing.assert_close(clipped, torch.full((1, 4), 1.0), rtol=1e-4, atol=1e-4)


def test_small_gradients_pass_unchanged():
    # loss 0.1 * (w.x - 1)^2: gradient -0.2 per weight, norm 0.4 < 2
    weight, norms = _one_step(loss_scale=0.1, max_norm=2.0)
    assert norms == [pytest.approx(0.4)]
    torch.testing.assert_close(weight, torch.full((1, 4), 0.2))


@pytest.mark.parametrize("max_norm", [0.0, -1.0])
def test_max_norm_must_be_positive(max_norm):
    with pytest.raises(ValueError, match=rf"max_norm must be positive, got {max_norm}"):
        GradientNormClipper(network=torch.nn.Linear(1, 1), max_norm=max_norm)
