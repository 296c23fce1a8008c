"""Observation model p(x, m | z) of a joint (image, tumour-mask) pair given decoder logits."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["PairLikelihood"]

IMAGE_LIKELIHOODS = ("bernoulli", "gaussian")
MASK_LIKELIHOODS = ("bernoulli", "categorical")


class PairLikelihood:
    """
    Log-likelihood of an image + mask pair under the decoder's output, summed over pixels, one value per sample.

    The decoder predicts logits for every channel of the pair; the image channels and the mask channels each
    follow their own distribution, and both share the latent code, so the pair is modelled jointly.

    - ``image_likelihood="bernoulli"``: binary cross-entropy on images in [0, 1], as in the authors' code
      (a cross-entropy without the continuous-Bernoulli normaliser).
    - ``image_likelihood="gaussian"``: ``N(x; sigmoid(logit), image_std**2)``, a fixed-variance Gaussian whose mean
      stays in [0, 1].
    - ``mask_likelihood="bernoulli"``: one independent Bernoulli per mask channel (suits overlapping regions such
      as BraTS WT/TC/ET and the single-channel masks of the paper).
    - ``mask_likelihood="categorical"``: mutually exclusive classes (e.g. HECKTOR GTVp / GTVn); the decoder gets one
      extra logit channel for the implicit background class.

    Args:
        image_channels: number of image channels ``C_img`` (1 to 4 in this project).
        mask_channels: number of mask channels ``C_mask`` (tumour classes or regions).
        image_likelihood: ``"bernoulli"`` or ``"gaussian"``.
        mask_likelihood: ``"bernoulli"`` or ``"categorical"``.
        image_std: standard deviation of the Gaussian image likelihood.

    Raises:
        ValueError: an unknown likelihood name or a non-positive channel count / standard deviation.

    Example::

        likelihood = PairLikelihood(image_channels=1, mask_channels=1)
        logits = torch.randn(2, likelihood.logit_channels, 32, 32)
        pair = torch.rand(2, 2, 32, 32).round()
        log_p = likelihood.log_prob(logits, pair)  # shape [2]
    """

    def __init__(
        self,
        image_channels: int,
        mask_channels: int,
        image_likelihood: str = "bernoulli",
        mask_likelihood: str = "bernoulli",
        image_std: float = 0.1,
    ) -> None:
        if image_channels < 1 or mask_channels < 1:
            raise ValueError(
                f"image_channels and mask_channels must be >= 1, got {image_channels} and {mask_channels}."
            )
        if image_likelihood not in IMAGE_LIKELIHOODS:
            raise ValueError(f"image_likelihood must be one of {IMAGE_LIKELIHOODS}, got {image_likelihood!r}.")
        if mask_likelihood not in MASK_LIKELIHOODS:
            raise ValueError(f"mask_likelihood must be one of {MASK_LIKELIHOODS}, got {mask_likelihood!r}.")
        if image_std <= 0:
            raise ValueError(f"image_std must be positive, got {image_std}.")
        self.image_channels = image_channels
        self.mask_channels = mask_channels
        self.image_likelihood = image_likelihood
        self.mask_likelihood = mask_likelihood
        self.image_std = image_std

    @property
    def pair_channels(self) -> int:
        """Channels of the pair tensor ``[image, mask]`` the model reads and reconstructs."""
        return self.image_channels + self.mask_channels

    @property
    def logit_channels(self) -> int:
        """Channels the decoder must output (one more than the pair for a categorical mask's background)."""
        return self.pair_channels + (1 if self.mask_likelihood == "categorical" else 0)

    def _split(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if logits.shape[1] != self.logit_channels:
            raise ValueError(f"expected {self.logit_channels} logit channels, got shape {tuple(logits.shape)}.")
        return logits[:, : self.image_channels], logits[:, self.image_channels :]

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """
        Expected pair under the decoder's distribution: image intensities and mask probabilities.

        Args:
            logits: decoder output ``[B, logit_channels, H, W]``.

        Returns:
            ``[B, C_img + C_mask, H, W]`` in [0, 1]; for a categorical mask, the foreground class probabilities.
        """
        image_logits, mask_logits = self._split(logits)
        if self.mask_likelihood == "categorical":
            # channel 0 of the mask logits is the implicit background class
            mask = torch.softmax(mask_logits, dim=1)[:, 1:]
        else:
            mask = torch.sigmoid(mask_logits)
        return torch.cat([torch.sigmoid(image_logits), mask], dim=1)

    def log_prob(self, logits: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """
        Per-sample log-likelihood ``log p(x, m | z)`` summed over channels and pixels.

        Args:
            logits: decoder output ``[B, logit_channels, H, W]``.
            pair: the observed pair ``[B, C_img + C_mask, H, W]``, image in [0, 1], mask binary (one-hot classes
                for a categorical mask, all zeros = background).

        Returns:
            tensor of shape ``[B]``.
        """
        if pair.shape[1] != self.pair_channels:
            raise ValueError(
                f"expected a pair with {self.image_channels} image + {self.mask_channels} mask channels, "
                f"got shape {tuple(pair.shape)}."
            )
        image_logits, mask_logits = self._split(logits)
        image, mask = pair[:, : self.image_channels], pair[:, self.image_channels :]
        if self.image_likelihood == "bernoulli":
            image_log_p = -F.binary_cross_entropy_with_logits(image_logits, image, reduction="none")
        else:
            residual = (image - torch.sigmoid(image_logits)) / self.image_std
            image_log_p = -0.5 * residual**2 - math.log(self.image_std) - 0.5 * math.log(2 * math.pi)
        if self.mask_likelihood == "bernoulli":
            mask_log_p = -F.binary_cross_entropy_with_logits(mask_logits, mask, reduction="none")
        else:
            background = (1.0 - mask.sum(dim=1, keepdim=True)).clamp_min(0.0)
            mask_log_p = torch.cat([background, mask], dim=1) * torch.log_softmax(mask_logits, dim=1)
        return image_log_p.flatten(1).sum(1) + mask_log_p.flatten(1).sum(1)
