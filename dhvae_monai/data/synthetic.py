"""Synthetic (image, mask) pairs from a trained generator: drawing, binarisation and tumour-area filtering."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

__all__ = ["draw_synthetic_pairs", "filter_synthetic_pairs"]


def filter_synthetic_pairs(
    pairs: torch.Tensor, image_channels: int, min_tumour_area: float = 200.0, mask_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Keep the sampled pairs whose tumour is large enough and binarise their masks (``method.md`` §7).

    The mask channels are thresholded at ``mask_threshold``, and a pair is kept when its binarised tumour (pixels
    that are tumour in any mask channel) covers more than ``min_tumour_area`` pixels. The paper keeps samples with
    more than 200 pixels on 128 x 128 slices, the lower edge of its slice selection; scale the threshold with the
    slice area for other sizes. The authors' code measures the *soft* mass (the sum of the probabilities) instead:
    a blurry generator's diffuse probabilities then pass the filter and binarise to near-empty masks, which teach
    the segmenter that its tumour slices have almost no tumour. The binarised area judges the mask that is kept.

    Args:
        pairs: ``[N, C_img + C_mask, H, W]`` from :meth:`DHVAE.sample`, mask channels as probabilities.
        image_channels: ``C_img``, the number of leading image channels.
        min_tumour_area: minimum tumour area of the binarised mask, in pixels.
        mask_threshold: probability above which a mask pixel is tumour.

    Returns:
        ``(kept_pairs, keep)``: the kept pairs with binary masks ``[M, C, H, W]`` and the boolean selection ``[N]``.

    Raises:
        ValueError: ``pairs`` is not 4D or has no mask channel after ``image_channels``.

    Example::

        pairs = generator.sample(64)
        synthetic, keep = filter_synthetic_pairs(pairs, image_channels=1, min_tumour_area=200)
    """
    if pairs.ndim != 4 or pairs.shape[1] <= image_channels:
        raise ValueError(
            f"expected pairs [N, {image_channels} image + >=1 mask channels, H, W], got shape {tuple(pairs.shape)}."
        )
    binary = (pairs[:, image_channels:] > mask_threshold).to(pairs.dtype)
    keep = binary.amax(dim=1).flatten(1).sum(1) > min_tumour_area
    kept = pairs[keep].clone()
    kept[:, image_channels:] = binary[keep]
    return kept, keep


@torch.no_grad()
def draw_synthetic_pairs(
    generator: nn.Module,
    num_pairs: int,
    min_tumour_area: float = 200.0,
    mask_threshold: float = 0.5,
    batch_size: int = 64,
    max_draws: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, int]:
    """
    Draw prior samples from a trained :class:`~dhvae_monai.networks.nets.DHVAE` until ``num_pairs`` pass
    :func:`filter_synthetic_pairs` (``method.md`` §7: one decoder pass per batch, no flow).

    Args:
        generator: the trained generator (put in eval mode here).
        num_pairs: pairs wanted.
        min_tumour_area: see :func:`filter_synthetic_pairs`.
        mask_threshold: see :func:`filter_synthetic_pairs`.
        batch_size: prior draws per decoder pass.
        max_draws: give up after this many draws (default ``100 * num_pairs``: the paper kept 12-39 % of its draws).
        seed: seed of the latent draws (same seed, same pairs).
        progress: show a progress bar of kept pairs.

    Returns:
        ``(pairs [num_pairs, C_img + C_mask, H, W] with binary masks, number of draws made)``.

    Raises:
        ValueError: ``num_pairs < 1``.
        RuntimeError: fewer than ``num_pairs`` kept after ``max_draws`` draws; the message gives the acceptance rate.

    Example::

        pairs, draws = draw_synthetic_pairs(generator, num_pairs=1000, min_tumour_area=200)
    """
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    max_draws = 100 * num_pairs if max_draws is None else max_draws
    network = getattr(generator, "module", generator)
    device = network.output_layer.weight.device
    random = torch.Generator(device=device).manual_seed(seed)
    was_training = network.training
    network.eval()
    kept: list[torch.Tensor] = []
    num_kept, draws = 0, 0
    try:
        with tqdm(total=num_pairs, desc="synthetic pairs", disable=not progress) as bar:
            while num_kept < num_pairs and draws < max_draws:
                count = min(batch_size, max_draws - draws)
                accepted, _ = filter_synthetic_pairs(
                    network.sample(count, generator=random), network.image_channels, min_tumour_area, mask_threshold
                )
                draws += count
                accepted = accepted[: num_pairs - num_kept].cpu()
                kept.append(accepted)
                num_kept += len(accepted)
                bar.update(len(accepted))
    finally:
        network.train(was_training)
    if num_kept < num_pairs:
        raise RuntimeError(
            f"only {num_kept} of {num_pairs} synthetic pairs had a tumour area above {min_tumour_area} pixels after "
            f"{draws} draws ({100 * num_kept / draws:.1f} % accepted); lower min_tumour_area, raise max_draws or "
            "train the generator longer."
        )
    return torch.cat(kept), draws
