"""Batch preparation for networks that read the (image, mask) pair as one tensor."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.utils import convert_to_tensor

__all__ = ["PreparePairBatch"]


class PreparePairBatch(PrepareBatch):
    """
    Concatenate a batch's image and mask along channels into the joint pair ``[B, C_img + C_mask, H, W]``, and
    return it as both the network input and the target.

    Used by :class:`~dhvae_monai.engines.DHVAETrainer` and by a ``SupervisedEvaluator`` that validates a
    :class:`~dhvae_monai.networks.nets.DHVAE` (its prediction is then the reconstruction and its label the pair, so
    MONAI's PSNR / SSIM handlers apply unchanged). Meta information is dropped: the generator needs plain tensors.

    Args:
        image_key: key of the image slices in the batch dictionary.
        mask_key: key of the mask slices.

    Raises:
        KeyError: a key is missing from the batch, named in the message.

    Example::

        evaluator = SupervisedEvaluator(device, val_loader, network=dhvae, prepare_batch=PreparePairBatch())
    """

    def __init__(self, image_key: str = "image", mask_key: str = "label") -> None:
        self.image_key = image_key
        self.mask_key = mask_key

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [key for key in (self.image_key, self.mask_key) if key not in batchdata]
        if missing:
            raise KeyError(f"batch has no {missing} key(s); available keys: {sorted(batchdata)}.")
        pair = torch.cat(
            [convert_to_tensor(batchdata[key], track_meta=False) for key in (self.image_key, self.mask_key)], dim=1
        )
        pair = pair.to(device=device, non_blocking=non_blocking, **kwargs)
        return pair, pair
