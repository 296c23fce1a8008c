from __future__ import annotations

import pytest
import torch
from monai.utils import set_determinism

from dhvae_monai.data.synthetic import filter_synthetic_pairs
from dhvae_monai.losses import DHVAELoss, HamiltonianELBOLoss
from dhvae_monai.networks import DHVAE, PairDiscriminator

TINY = {"image_size": 32, "channels": (8, 16, 32, 32), "norm_num_groups": 8, "latent_channels": 4}


def disc_pairs(num_pairs: int = 6, size: int = 32) -> torch.Tensor:
    """Head-like ellipses with a disc tumour of varying position and radius: [N, 2, size, size]."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    generator = torch.Generator().manual_seed(0)
    pairs = []
    for index in range(num_pairs):
        cy, cx = torch.randint(size // 3, 2 * size // 3, (2,), generator=generator)
        radius = 4 + index % 4
        mask = (((yy - cy) ** 2 + (xx - cx) ** 2) <= radius**2).float()
        head = ((yy - size / 2) ** 2 / (0.44 * size) ** 2 + (xx - size / 2) ** 2 / (0.38 * size) ** 2 <= 1).float()
        pairs.append(torch.stack([0.4 * head + 0.5 * mask, mask]))
    return torch.stack(pairs)


def dice(prediction: torch.Tensor, target: torch.Tensor) -> float:
    intersection = (prediction * target).flatten(1).sum(1)
    return float((2 * intersection / (prediction.flatten(1).sum(1) + target.flatten(1).sum(1))).mean())


def test_forward_returns_one_tensor_shaped_like_the_pair():
    net = DHVAE(image_channels=2, mask_channels=3, leapfrog_steps=2, **TINY)
    pair = torch.rand(3, 5, 32, 32)
    reconstruction = net(pair)
    assert isinstance(reconstruction, torch.Tensor) and reconstruction.shape == pair.shape
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1


def test_forward_flow_exposes_the_flow_internals():
    net = DHVAE(leapfrog_steps=3, **TINY)
    output = net.forward_flow(torch.rand(2, 2, 32, 32))
    assert output.z_mu.shape == output.z_k.shape == output.momentum.shape == (2, *net.latent_shape)
    assert net.latent_shape == (4, 4, 4)
    assert output.log_likelihood.shape == (2,)
    assert not torch.equal(output.z_0, output.z_k)  # the flow moved the sample


def test_categorical_mask_reconstructs_class_probabilities():
    net = DHVAE(image_channels=1, mask_channels=2, mask_likelihood="categorical", leapfrog_steps=1, **TINY)
    assert net.likelihood.logit_channels == 4
    reconstruction = net(torch.rand(2, 3, 32, 32))
    assert reconstruction.shape == (2, 3, 32, 32)
    assert torch.all(reconstruction[:, 1:].sum(1) <= 1 + 1e-6)


def test_sample_decodes_prior_draws_in_one_pass_reproducibly():
    net = DHVAE(leapfrog_steps=3, **TINY).eval()
    calls = []
    net.output_layer.register_forward_hook(lambda *args: calls.append(1))
    first = net.sample(5, generator=torch.Generator().manual_seed(1))
    second = net.sample(5, generator=torch.Generator().manual_seed(1))
    assert first.shape == (5, 2, 32, 32) and len(calls) == 2
    torch.testing.assert_close(first, second)
    assert 0 <= float(first[:, 1].min()) and float(first[:, 1].max()) <= 1  # probabilities, not yet binarised


def test_filter_synthetic_pairs_keeps_large_binarised_tumours_and_binarises():
    pairs = torch.zeros(4, 2, 16, 16)
    pairs[0, 1, :10, :10] = 0.9  # 100 tumour pixels
    pairs[1, 1, :4, :4] = 0.9  # 16 tumour pixels
    pairs[2, 1] = 0.3  # soft mass 76.8 but nothing above 0.5: an empty mask once binarised
    pairs[3, 1, :8, :8] = 0.6  # 64 tumour pixels, soft mass 38.4: the binarised area is what counts
    kept, keep = filter_synthetic_pairs(pairs, image_channels=1, min_tumour_area=50)
    assert keep.tolist() == [True, False, False, True]
    assert set(kept[:, 1].unique().tolist()) <= {0.0, 1.0}
    assert float(kept[0, 1].sum()) == 100 and float(kept[1, 1].sum()) == 64
    with pytest.raises(ValueError, match="mask channels"):
        filter_synthetic_pairs(pairs, image_channels=2)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_decoder_evaluations_per_training_step(steps):
    set_determinism(0)
    net = DHVAE(leapfrog_steps=steps, **TINY)
    discriminator = PairDiscriminator(channels=8)
    calls = []
    net.output_layer.register_forward_hook(lambda *args: calls.append(1))
    pair = disc_pairs(2)
    output = net.forward_flow(pair)
    terms = DHVAELoss()(output, pair, discriminator, adversarial=True,
                        output_layer_gradient=lambda loss: net.output_layer_gradient(loss, output))
    terms["loss"].backward()
    assert len(calls) == steps + 1 <= steps + 2


def test_gradients_reach_encoder_decoder_and_learnable_flow_parameters():
    net = DHVAE(leapfrog_steps=2, learn_step_size=True, learn_temperature=True, **TINY)
    HamiltonianELBOLoss()(net.forward_flow(disc_pairs(2))).backward()
    named = dict(net.named_parameters())
    for name in ("autoencoder.encoder.blocks.0.conv.weight", "autoencoder.quant_conv_mu.conv.weight",
                 "autoencoder.decoder.blocks.0.conv.weight", "flow.log_step_size", "flow.sqrt_beta0_logit"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    assert named["flow.log_step_size"].shape == net.latent_shape


def test_hvae_gradient_differs_from_vae_gradient_through_second_order_terms():
    # the flow's gradients of U depend on the decoder: its weights get second-order terms a VAE does not have
    set_determinism(0)
    pair = disc_pairs(2)
    grads = []
    for steps in (0, 2):
        torch.manual_seed(0)
        net = DHVAE(leapfrog_steps=steps, step_size=0.05, **TINY)
        torch.manual_seed(1)
        HamiltonianELBOLoss()(net.forward_flow(pair)).backward()
        grads.append(net.autoencoder.decoder.blocks[0].conv.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_output_layer_gradient_matches_autograd_up_to_second_order_flow_terms():
    torch.manual_seed(0)
    net = DHVAE(leapfrog_steps=3, **TINY)
    pair = disc_pairs(4)
    output = net.forward_flow(pair)
    loss = (output.reconstruction - pair).abs().sum()
    (exact,) = torch.autograd.grad(loss, net.output_layer.weight, retain_graph=True)
    direct = net.output_layer_gradient(loss, output)
    assert ((direct - exact).norm() / exact.norm()).item() < 1e-3
    # without a flow there are no other paths: identical
    vae = DHVAE(leapfrog_steps=0, **TINY)
    output = vae.forward_flow(pair)
    loss = output.reconstruction.pow(2).sum()
    (exact,) = torch.autograd.grad(loss, vae.output_layer.weight, retain_graph=True)
    torch.testing.assert_close(vae.output_layer_gradient(loss, output), exact, rtol=1e-4, atol=1e-6)


def test_rejects_wrong_input_and_configuration():
    net = DHVAE(**TINY)
    with pytest.raises(ValueError, match="1 image \\+ 1 mask"):
        net(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="built for 32x32"):
        net(torch.rand(1, 2, 64, 64))
    with pytest.raises(ValueError, match="divisible by 8"):
        DHVAE(image_size=36, channels=(8, 16, 32, 32), norm_num_groups=8)
    with pytest.raises(ValueError, match="image_likelihood"):
        DHVAE(image_likelihood="poisson", **TINY)


def test_tiny_dhvae_overfits_a_handful_of_pairs():
    """Stated targets: the loss falls by a factor 2.5 and the reconstructed masks reach Dice 0.8 in 100 steps."""
    set_determinism(0)
    pairs = disc_pairs(6)
    net = DHVAE(leapfrog_steps=2, **TINY)
    loss_function = DHVAELoss(regulariser_weight=0.0)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        terms = loss_function(net.forward_flow(pairs), pairs)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < losses[0] / 2.5, (losses[0], losses[-1])
    with torch.no_grad():
        reconstruction = net.eval()(pairs)
    assert dice((reconstruction[:, 1:] > 0.5).float(), pairs[:, 1:]) > 0.8
