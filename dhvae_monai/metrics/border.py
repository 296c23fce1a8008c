"""The border artefact of under-trained generators: tumour-mask pixels on the outer frame of the slice."""

from __future__ import annotations

import torch

__all__ = ["tumour_on_border"]


def tumour_on_border(masks: torch.Tensor, border_width: int = 1, mask_threshold: float = 0.5) -> torch.Tensor:
    """
    Which masks mark tumour on the image border: any mask channel above ``mask_threshold`` in the outer
    ``border_width`` rows or columns.

    Real tumour slices are cropped around the brain or the head and neck, so their tumours do not reach the border;
    generators trained briefly often paint mask pixels along it (the bundles' README, Limitations), and the
    tumour-area filter counts those pixels as tumour.

    Args:
        masks: ``[N, C_mask, H, W]``, binary or probabilities.
        border_width: width of the frame in pixels.
        mask_threshold: probability above which a mask pixel is tumour.

    Returns:
        a boolean tensor ``[N]``.

    Raises:
        ValueError: ``masks`` is not 4D, or ``border_width`` is not in ``[1, min(H, W) / 2)``.

    Example::

        kept, _ = filter_synthetic_pairs(generator.sample(64), image_channels=1)
        border_fraction = tumour_on_border(kept[:, 1:]).float().mean()
    """
    if masks.ndim != 4:
        raise ValueError(f"expected masks [N, C_mask, H, W], got shape {tuple(masks.shape)}.")
    height, width = masks.shape[-2:]
    if not 1 <= border_width < min(height, width) / 2:
        raise ValueError(
            f"border_width must be in [1, {min(height, width) / 2}) for {height}x{width} masks, got {border_width}."
        )
    frame = torch.ones(height, width, dtype=torch.bool, device=masks.device)
    frame[border_width:-border_width, border_width:-border_width] = False
    return ((masks > mask_threshold) & frame).flatten(1).any(1)
