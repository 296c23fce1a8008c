"""DHVAE: the 2D generator of joint (image, tumour-mask) pairs with a Hamiltonian flow in its latent space."""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from monai.networks.nets import AutoencoderKL
from torch import nn

from dhvae_monai.networks.blocks.hamiltonian_flow import HamiltonianFlow
from dhvae_monai.networks.blocks.pair_likelihood import PairLikelihood

__all__ = ["DHVAE", "DHVAEOutput", "standard_normal_log_prob"]


def standard_normal_log_prob(value: torch.Tensor) -> torch.Tensor:
    """``log N(value; 0, I)`` summed over all but the batch dimension, shape ``[B]``."""
    return -0.5 * (value.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)


class DHVAEOutput(NamedTuple):
    """
    Everything the HVAE ELBO and the discriminative regulariser need from one pass of :class:`DHVAE`.

    Attributes:
        reconstruction: expected pair at ``z_K`` (image in [0, 1], mask probabilities), ``[B, C_img + C_mask, H, W]``.
        logits: decoder output at ``z_K`` (``PairLikelihood.logit_channels`` channels).
        log_likelihood: ``log p(x, m | z_K)`` per sample, ``[B]``.
        z_mu: posterior mean. z_log_var: posterior log-variance (clamped to [-30, 20]).
        posterior_noise: ``eps_0`` with ``z_0 = z_mu + exp(z_log_var / 2) * eps_0``.
        z_0: the posterior sample that starts the flow. z_k: the flow's end point ``z_K``.
        momentum_noise: ``gamma`` with ``rho_0 = gamma / sqrt(beta_0)``; None for ``K = 0``.
        momentum: ``rho_K``; None for ``K = 0``.
        decoder_features: input of the decoder's output convolution at ``z_K`` (for
            :meth:`DHVAE.output_layer_gradient`).
    """

    reconstruction: torch.Tensor
    logits: torch.Tensor
    log_likelihood: torch.Tensor
    z_mu: torch.Tensor
    z_log_var: torch.Tensor
    posterior_noise: torch.Tensor
    z_0: torch.Tensor
    z_k: torch.Tensor
    momentum_noise: torch.Tensor | None
    momentum: torch.Tensor | None
    decoder_features: torch.Tensor


class DHVAE(nn.Module):
    """
    Discriminative Hamiltonian VAE generator of 2D (image, tumour-mask) pairs.

    The image channels and the mask channels form one input ``[B, C_img + C_mask, H, W]``; a convolutional
    encoder gives a Gaussian posterior over a spatial latent ``z`` (``N(0, I)`` prior), a sample of which is refined by
    ``K`` tempered leapfrog steps on ``U(z) = -log p(x, m | z) - log p(z)`` (:class:`HamiltonianFlow`), then one
    decoder pass yields both the image and the mask. The backbone is MONAI's
    :class:`~monai.networks.nets.AutoencoderKL` (four resolution levels, self-attention at the deepest one and in the
    bottleneck), the closest ready-made match to the authors' network (``method.md`` §3).

    ``leapfrog_steps=0`` gives a plain VAE and the discriminative regulariser's weight ``alpha = 0`` (in the loss)
    gives the HVAE of the predecessor paper: the baselines come from this class by configuration.

    Args:
        image_channels: ``C_img``: 1 (one MRI sequence or PET), 2 (PET + CT) ... 4 (four BraTS sequences).
        mask_channels: ``C_mask``: number of tumour classes or regions.
        image_size: side of the square slices; with ``len(channels)`` levels the latent side is
            ``image_size / 2 ** (len(channels) - 1)``.
        channels: feature channels per resolution level.
        latent_channels: channels of the latent ``z``.
        num_res_blocks: residual blocks per level.
        attention_levels: which levels have self-attention.
        norm_num_groups: GroupNorm groups (must divide every entry of ``channels``).
        leapfrog_steps: ``K``; 3 in the authors' code.
        step_size: leapfrog step ``epsilon``; 0.001 in the authors' code.
        initial_inverse_temperature: ``beta_0``; 0.09 (the code's 0.3 is its square root).
        learn_step_size: learn ``epsilon`` (one value per latent dimension).
        learn_temperature: learn ``beta_0``.
        image_likelihood: ``"bernoulli"`` (authors' code) or ``"gaussian"``; see :class:`PairLikelihood`.
        mask_likelihood: ``"bernoulli"`` or ``"categorical"``.
        image_std: standard deviation of the Gaussian image likelihood.

    Raises:
        ValueError: ``image_size`` not divisible by the encoder's total downsampling, or invalid flow / likelihood
            arguments.

    Example::

        net = DHVAE(image_channels=1, mask_channels=1, image_size=32, channels=(8, 16, 32, 32), norm_num_groups=8)
        pair = torch.rand(2, 2, 32, 32)
        reconstruction = net(pair)                      # [2, 2, 32, 32]
        output = net.forward_flow(pair)                 # DHVAEOutput for the losses
        synthetic = net.sample(4)                       # [4, 2, 32, 32], mask channel as probabilities
    """

    def __init__(
        self,
        image_channels: int = 1,
        mask_channels: int = 1,
        image_size: int = 128,
        channels: Sequence[int] = (128, 256, 512, 512),
        latent_channels: int = 3,
        num_res_blocks: int | Sequence[int] = 2,
        attention_levels: Sequence[bool] = (False, False, False, True),
        norm_num_groups: int = 32,
        leapfrog_steps: int = 3,
        step_size: float = 1e-3,
        initial_inverse_temperature: float = 0.09,
        learn_step_size: bool = False,
        learn_temperature: bool = False,
        image_likelihood: str = "bernoulli",
        mask_likelihood: str = "bernoulli",
        image_std: float = 0.1,
    ) -> None:
        super().__init__()
        downsampling = 2 ** (len(channels) - 1)
        if image_size % downsampling:
            raise ValueError(
                f"image_size {image_size} must be divisible by {downsampling} "
                f"(the encoder halves it {len(channels) - 1} times for channels={tuple(channels)})."
            )
        self.likelihood = PairLikelihood(image_channels, mask_channels, image_likelihood, mask_likelihood, image_std)
        self.image_channels = image_channels
        self.mask_channels = mask_channels
        self.image_size = image_size
        self.latent_shape = (latent_channels, image_size // downsampling, image_size // downsampling)
        if isinstance(num_res_blocks, int):
            num_res_blocks = (num_res_blocks,) * len(channels)
        self.autoencoder = AutoencoderKL(
            spatial_dims=2,
            in_channels=self.likelihood.pair_channels,
            out_channels=self.likelihood.logit_channels,
            num_res_blocks=tuple(num_res_blocks),
            channels=tuple(channels),
            attention_levels=tuple(attention_levels),
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
        )
        self.flow = HamiltonianFlow(
            leapfrog_steps=leapfrog_steps,
            step_size=step_size,
            initial_inverse_temperature=initial_inverse_temperature,
            learn_step_size=learn_step_size,
            learn_temperature=learn_temperature,
            latent_shape=self.latent_shape,
        )

    @property
    def leapfrog_steps(self) -> int:
        """``K``, the number of leapfrog steps (0 for a plain VAE)."""
        return self.flow.leapfrog_steps

    @property
    def output_layer(self) -> nn.Conv2d:
        """The decoder's output convolution (whose weight the adaptive adversarial weight looks at)."""
        return self.autoencoder.decoder.blocks[-1].conv

    def encode(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Posterior parameters of a batch of pairs.

        Args:
            pair: ``[B, C_img + C_mask, H, W]``.

        Returns:
            ``(z_mu, z_log_var)``, each ``[B, *latent_shape]``; the log-variance is clamped to [-30, 20] like
            MONAI's ``AutoencoderKL``.
        """
        self._check_input(pair)
        features = self.autoencoder.encoder(pair)
        z_mu = self.autoencoder.quant_conv_mu(features)
        z_log_var = self.autoencoder.quant_conv_log_sigma(features).clamp(-30.0, 20.0)
        return z_mu, z_log_var

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``[B, logit_channels, H, W]`` for latents ``z`` of shape ``[B, *latent_shape]``."""
        return self._decode_with_features(z)[0]

    def _decode_with_features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``AutoencoderKL.decode`` step by step, also returning the input of the output convolution."""
        features = self.autoencoder.post_quant_conv(z)
        *blocks, output_block = self.autoencoder.decoder.blocks
        for block in blocks:
            features = block(features)
        return output_block(features), features

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Expected pairs (image in [0, 1], mask probabilities) for latents ``z``."""
        return self.likelihood.mean(self.decode_logits(z))

    def potential_energy(
        self, z: torch.Tensor, pair: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """
        ``U(z) = -log p(pair | z) - log N(z; 0, I)`` per sample, with what the decoder computed at ``z``.

        Args:
            z: latents ``[B, *latent_shape]``.
            pair: observed pairs ``[B, C_img + C_mask, H, W]``.

        Returns:
            ``(U [B], (logits, log_likelihood [B], decoder_features))``.
        """
        logits, features = self._decode_with_features(z)
        log_likelihood = self.likelihood.log_prob(logits, pair)
        return -(log_likelihood + standard_normal_log_prob(z)), (logits, log_likelihood, features)

    def forward_flow(self, pair: torch.Tensor) -> DHVAEOutput:
        """
        Encode, draw ``z_0`` from the posterior, run the Hamiltonian flow to ``z_K`` and decode it.

        The decoder output at ``z_K`` is the one computed by the flow's last gradient evaluation, so one pass costs
        ``K + 1`` decoder evaluations (1 for ``K = 0``).

        Args:
            pair: ``[B, C_img + C_mask, H, W]``, image in [0, 1], mask binary.

        Returns:
            :class:`DHVAEOutput`.
        """
        z_mu, z_log_var = self.encode(pair)
        posterior_noise = torch.randn_like(z_mu)
        z_0 = z_mu + torch.exp(0.5 * z_log_var) * posterior_noise
        momentum_noise = torch.randn_like(z_0) if self.leapfrog_steps > 0 else None
        state = self.flow(z_0, momentum_noise, lambda z: self.potential_energy(z, pair))
        logits, log_likelihood, decoder_features = state.extras
        return DHVAEOutput(
            reconstruction=self.likelihood.mean(logits),
            logits=logits,
            log_likelihood=log_likelihood,
            z_mu=z_mu,
            z_log_var=z_log_var,
            posterior_noise=posterior_noise,
            z_0=z_0,
            z_k=state.position,
            momentum_noise=momentum_noise,
            momentum=state.momentum,
            decoder_features=decoder_features,
        )

    def output_layer_gradient(self, loss: torch.Tensor, output: DHVAEOutput) -> torch.Tensor:
        """
        Gradient of a loss of the reconstruction with respect to the output convolution's weight, along the direct
        path (through the logits at ``z_K``).

        The full gradient also flows through the leapfrog steps, whose gradients of ``U`` depend on the same weight;
        those second-order paths are scaled by the step size (``1e-3``), change the gradient by about 1e-5 relative
        (measured on the demo's network), and would cost a backward pass through the whole flow per call. The
        adaptive adversarial weight calls this twice per iteration.

        Args:
            loss: scalar computed from ``output.reconstruction`` or ``output.logits`` (graph kept).
            output: the :meth:`forward_flow` result the loss was computed from.

        Returns:
            a tensor shaped like ``output_layer.weight``.
        """
        (logits_gradient,) = torch.autograd.grad(loss, output.logits, retain_graph=True)
        conv = self.output_layer
        return torch.nn.grad.conv2d_weight(
            output.decoder_features,
            conv.weight.shape,
            logits_gradient,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
        )

    def forward(self, pair: torch.Tensor, return_flow: bool = False) -> torch.Tensor | DHVAEOutput:
        """
        Reconstruct a batch of pairs through the flow (stochastic, like MONAI's ``AutoencoderKL``).

        Args:
            pair: ``[B, C_img + C_mask, H, W]``.
            return_flow: return the whole :class:`DHVAEOutput` (as :meth:`forward_flow`). Trainers use this rather
                than calling :meth:`forward_flow`, so that a ``DistributedDataParallel`` wrapper sees the forward pass
                and synchronises the gradients.

        Returns:
            the reconstruction, same shape as ``pair`` (image in [0, 1] and mask probabilities), or the
            :class:`DHVAEOutput` with ``return_flow=True``.
        """
        output = self.forward_flow(pair)
        return output if return_flow else output.reconstruction

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """
        Draw synthetic pairs: ``z ~ N(0, I)`` decoded in one pass (no flow at generation time, as in the paper).

        Args:
            num_samples: number of pairs.
            generator: optional ``torch.Generator`` (on the model's device) for reproducible draws.

        Returns:
            ``[num_samples, C_img + C_mask, H, W]``: image channels in [0, 1], mask channels as probabilities (use
            :func:`dhvae_monai.data.synthetic.filter_synthetic_pairs` to binarise and filter them).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        device = self.output_layer.weight.device
        z = torch.randn((num_samples, *self.latent_shape), generator=generator, device=device)
        return self.decode(z)

    def _check_input(self, pair: torch.Tensor) -> None:
        expected = self.likelihood.pair_channels
        if pair.ndim != 4 or pair.shape[1] != expected:
            raise ValueError(
                f"DHVAE expects pairs of shape [B, {self.image_channels} image + {self.mask_channels} mask channels, "
                f"H, W], got {tuple(pair.shape)}."
            )
        if pair.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"DHVAE was built for {self.image_size}x{self.image_size} slices, got {tuple(pair.shape[-2:])}; "
                "resize the slices or set image_size."
            )
