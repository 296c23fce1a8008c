from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dhvae_monai.losses import (
    AdversarialLoss,
    DHVAELoss,
    DiscriminatorFeatureLoss,
    HamiltonianELBOLoss,
    PretrainedPerceptualLoss,
    adaptive_adversarial_weight,
)
from dhvae_monai.networks import DHVAE, DHVAEOutput, PairDiscriminator, PairLikelihood

TINY = {"image_size": 32, "channels": (8, 16, 32, 32), "norm_num_groups": 8}


def test_bernoulli_likelihood_is_the_summed_binary_cross_entropy():
    likelihood = PairLikelihood(1, 1)
    logits, pair = torch.randn(2, 2, 8, 8), torch.rand(2, 2, 8, 8).round()
    expected = -F.binary_cross_entropy_with_logits(logits, pair, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(likelihood.log_prob(logits, pair), expected)


def test_gaussian_image_likelihood_peaks_at_the_mean():
    likelihood = PairLikelihood(1, 1, image_likelihood="gaussian", image_std=0.1)
    image = torch.full((1, 1, 4, 4), 0.7)
    pair = torch.cat([image, torch.zeros_like(image)], 1)
    exact = torch.cat([torch.logit(image), torch.full_like(image, -20.0)], 1)
    off = torch.cat([torch.logit(image - 0.2), torch.full_like(image, -20.0)], 1)
    gaussian_normaliser = 16 * (-math.log(0.1) - 0.5 * math.log(2 * math.pi))
    assert float(likelihood.log_prob(exact, pair)) == pytest.approx(gaussian_normaliser, abs=1e-3)
    assert likelihood.log_prob(off, pair) < likelihood.log_prob(exact, pair)


def test_categorical_mask_likelihood_uses_background_class():
    likelihood = PairLikelihood(1, 2, mask_likelihood="categorical")
    pair = torch.zeros(1, 3, 1, 3)
    pair[0, 1, 0, 1] = 1  # class 1 at pixel 1, class 2 at pixel 2, background at pixel 0
    pair[0, 2, 0, 2] = 1
    logits = torch.zeros(1, 4, 1, 3)
    logits[0, 0] = -50.0  # image channel: log p(x=0) ~ 0
    expected = 3 * math.log(1 / 3)  # uniform over 3 classes at each of 3 pixels
    assert float(likelihood.log_prob(logits, pair)) == pytest.approx(expected, abs=1e-4)


def test_likelihood_rejects_wrong_channels():
    with pytest.raises(ValueError, match="2 logit channels"):
        PairLikelihood(1, 1).log_prob(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="mask_likelihood"):
        PairLikelihood(1, 1, mask_likelihood="dice")


def _vae_output(num_samples: int, dim: int = 6) -> tuple[DHVAEOutput, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    mu, log_var = torch.randn(1, dim).repeat(num_samples, 1), torch.randn(1, dim).repeat(num_samples, 1)
    noise = torch.randn(num_samples, dim)
    z = mu + torch.exp(0.5 * log_var) * noise
    output = DHVAEOutput(
        reconstruction=torch.zeros(num_samples, 1), logits=torch.zeros(num_samples, 1),
        log_likelihood=torch.full((num_samples,), -3.0), z_mu=mu, z_log_var=log_var, posterior_noise=noise,
        z_0=z, z_k=z, momentum_noise=None, momentum=None, decoder_features=torch.zeros(num_samples, 1),
    )
    return output, mu, log_var


def test_zero_step_elbo_is_the_vae_elbo_with_analytic_kl_in_expectation():
    output, mu, log_var = _vae_output(40000)
    analytic_kl = float(0.5 * (mu[0] ** 2 + log_var[0].exp() - 1 - log_var[0]).sum())
    monte_carlo = HamiltonianELBOLoss(reduction="none")(output)
    analytic = HamiltonianELBOLoss(analytic_kl=True, reduction="none")(output)
    torch.testing.assert_close(analytic, torch.full_like(analytic, 3.0 + analytic_kl))
    standard_error = float(monte_carlo.std()) / math.sqrt(len(monte_carlo))
    assert float(monte_carlo.mean()) == pytest.approx(3.0 + analytic_kl, abs=4 * standard_error)


def test_hamiltonian_elbo_adds_the_momentum_terms():
    net = DHVAE(leapfrog_steps=2, **TINY)
    output = net.forward_flow(torch.rand(2, 2, 32, 32))
    gauss = lambda v: -0.5 * (v.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)  # noqa: E731
    expected = (
        output.log_likelihood + gauss(output.z_k) - (gauss(output.posterior_noise) - 0.5 * output.z_log_var.flatten(1).sum(1))
        + gauss(output.momentum) - gauss(output.momentum_noise)
    )
    torch.testing.assert_close(HamiltonianELBOLoss(reduction="none")(output), -expected)
    torch.testing.assert_close(HamiltonianELBOLoss()(output), -expected.mean())
    with pytest.raises(ValueError, match="leapfrog_steps=0"):
        HamiltonianELBOLoss(analytic_kl=True)(output)


def test_adversarial_objectives():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    hinge = AdversarialLoss("hinge")
    assert float(hinge.discriminator_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))
    assert float(hinge.generator_loss(fake)) == pytest.approx(1.0)
    least_squares = AdversarialLoss("least_squares")
    assert float(least_squares.discriminator_loss(real, fake)) == pytest.approx(0.5 * (0.625 + 2.0))
    assert float(least_squares.generator_loss(fake)) == pytest.approx(0.5 * 5.0)
    with pytest.raises(ValueError, match="hinge"):
        AdversarialLoss("wasserstein")


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    reconstruction_gradient = torch.tensor([3.0, 4.0], requires_grad=True)  # norm 5
    generator_gradient = torch.tensor([0.6, 0.8])  # norm 1
    value = adaptive_adversarial_weight(reconstruction_gradient, generator_gradient)
    assert float(value) == pytest.approx(5.0 / (1.0 + 1e-4))
    assert not value.requires_grad
    assert float(adaptive_adversarial_weight(reconstruction_gradient, generator_gradient * 0, max_weight=10.0)) == 10.0


def test_discriminator_feature_loss_is_zero_for_identical_inputs_and_per_sample():
    discriminator = PairDiscriminator(channels=8)
    pair = torch.rand(3, 2, 32, 32)
    features = discriminator(pair)[:-1]
    loss = DiscriminatorFeatureLoss()
    assert torch.allclose(loss(features, [f.detach() for f in features]), torch.zeros(3))
    other = discriminator(torch.rand(3, 2, 32, 32))[:-1]
    distance = loss(other, features)
    assert distance.shape == (3,) and torch.all(distance > 0)
    with pytest.raises(ValueError, match="same non-zero number"):
        loss(other[:2], features)


def test_pretrained_perceptual_loss_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="lpips|weights not found"):
        PretrainedPerceptualLoss("vgg")
    with pytest.raises(ValueError, match="network_type"):
        PretrainedPerceptualLoss("resnet")


def test_dhvae_loss_combines_terms():
    torch.manual_seed(0)
    net, discriminator = DHVAE(leapfrog_steps=1, **TINY), PairDiscriminator(channels=8)
    pair = torch.rand(2, 2, 32, 32)
    output = net.forward_flow(pair)

    hvae = DHVAELoss(regulariser_weight=0.0)(output, pair)
    assert set(hvae) == {"loss", "elbo_loss"} and torch.equal(hvae["loss"], hvae["elbo_loss"])

    loss = DHVAELoss(regulariser_weight=0.25)
    without = loss(output, pair, discriminator)
    expected_pixel = (output.reconstruction - pair).abs().flatten(1).sum(1).mean()
    torch.testing.assert_close(without["pixel_loss"], expected_pixel)
    torch.testing.assert_close(
        without["reconstruction_loss"], without["pixel_loss"] + pair[0].numel() * without["perceptual_loss"]
    )
    torch.testing.assert_close(without["loss"], 0.75 * without["elbo_loss"] + 0.25 * without["reconstruction_loss"])
    assert "generator_adversarial_loss" not in without

    with_adversarial = loss(output, pair, discriminator, adversarial=True,
                            output_layer_gradient=lambda term: net.output_layer_gradient(term, output))
    torch.testing.assert_close(
        with_adversarial["regulariser_loss"],
        with_adversarial["reconstruction_loss"]
        + with_adversarial["adaptive_weight"] * with_adversarial["generator_adversarial_loss"],
    )
    assert loss.discriminator_loss(discriminator, pair, output.reconstruction).item() > 0

    no_perceptual = DHVAELoss(perceptual="none")(output, pair)
    assert float(no_perceptual["perceptual_loss"]) == 0.0


def test_dhvae_loss_errors():
    with pytest.raises(ValueError, match="alpha"):
        DHVAELoss(regulariser_weight=1.5)
    with pytest.raises(ValueError, match="perceptual"):
        DHVAELoss(perceptual="lpips")
    net = DHVAE(leapfrog_steps=0, **TINY)
    pair = torch.rand(1, 2, 32, 32)
    with pytest.raises(ValueError, match="needs the discriminator"):
        DHVAELoss()(net.forward_flow(pair), pair)
    with pytest.raises(ValueError, match="output_layer_gradient"):
        DHVAELoss()(net.forward_flow(pair), pair, PairDiscriminator(channels=8), adversarial=True)
