"""Synthetic (image, mask) pairs as a dataset: written to NIfTI with a datalist, read back, or drawn on the fly."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import torch
from monai.transforms import LoadImage
from torch.utils.data import Dataset
from tqdm import tqdm

from dhvae_monai.data.synthetic import draw_synthetic_pairs
from dhvae_monai.networks.weights import load_weights
from dhvae_monai.utils.atomic import atomic_path
from dhvae_monai.visualize.pair_grid import save_pair_grid

__all__ = ["SYNTHETIC_SOURCES", "SyntheticPairDataset", "sample_synthetic_pairs", "save_synthetic_pairs"]

SYNTHETIC_SOURCES = ("files", "generator")
DATALIST_NAME = "synthetic_datalist.json"

logger = logging.getLogger(__name__)


def save_synthetic_pairs(
    pairs: torch.Tensor, output_dir: str | os.PathLike, image_channels: int, num_draws: int | None = None
) -> Path:
    """
    Write pairs as NIfTI files, ``pairs/synthetic_<i>_image.nii.gz`` and ``..._label.nii.gz`` (each a one-slice
    volume ``[H, W, 1, C]``, viewable in any NIfTI viewer), and then ``synthetic_datalist.json`` listing them under
    ``"training"`` with each pair's tumour area. Every file is written atomically and the datalist last, so a
    datalist always describes complete pairs.

    Args:
        pairs: ``[N, C_img + C_mask, H, W]``, binary masks.
        output_dir: destination folder.
        image_channels: ``C_img``.
        num_draws: prior draws it took to get the pairs, recorded in the datalist.

    Returns:
        the datalist path.

    Example::

        pairs, draws = draw_synthetic_pairs(generator, 1000)
        datalist = save_synthetic_pairs(pairs, "runs/synthetic", image_channels=1, num_draws=draws)
    """
    output_dir = Path(output_dir)
    items = []
    for index, pair in enumerate(tqdm(pairs, desc="writing pairs", leave=False)):
        item = {"tumour_area": float(pair[image_channels:].amax(0).sum())}
        for key, part in (("image", pair[:image_channels]), ("label", pair[image_channels:])):
            path = output_dir / "pairs" / f"synthetic_{index:05d}_{key}.nii.gz"
            with atomic_path(path) as temporary:
                volume = part.detach().float().cpu().permute(1, 2, 0).unsqueeze(2).numpy()
                nib.save(nib.Nifti1Image(volume, np.eye(4)), temporary)
            item[key] = str(path.relative_to(output_dir))
        items.append(item)
    datalist = {"num_pairs": len(items), "num_draws": num_draws, "image_channels": image_channels, "training": items}
    path = output_dir / DATALIST_NAME
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(datalist, indent=2) + "\n")
    return path


def sample_synthetic_pairs(
    generator: torch.nn.Module,
    output_dir: str | os.PathLike,
    num_pairs: int,
    min_tumour_area: float = 200.0,
    mask_threshold: float = 0.5,
    batch_size: int = 64,
    max_draws: int | None = None,
    seed: int = 0,
    num_preview: int = 32,
) -> Path:
    """
    The ``sample`` stage: draw ``num_pairs`` pairs that pass the tumour-area filter (``method.md`` §7), write them
    with :func:`save_synthetic_pairs`, and save ``preview.png``, a grid of the first ``num_preview`` pairs.

    Args:
        generator: a trained :class:`~dhvae_monai.networks.nets.DHVAE`.
        output_dir: destination folder.
        num_pairs: pairs to write.
        min_tumour_area: smallest expected tumour area kept, in pixels.
        mask_threshold: probability above which a mask pixel is tumour.
        batch_size: prior draws per decoder pass.
        max_draws: draw budget (see :func:`~dhvae_monai.data.draw_synthetic_pairs`).
        seed: seed of the draws.
        num_preview: pairs shown in the preview.

    Returns:
        the datalist path.

    Example::

        sample_synthetic_pairs(load_weights(DHVAE(), "models/generator.pt"), "runs/synthetic", num_pairs=1000)
    """
    pairs, draws = draw_synthetic_pairs(
        generator, num_pairs, min_tumour_area, mask_threshold, batch_size, max_draws, seed, progress=True
    )
    logger.info("%d pairs kept from %d prior draws (%.1f %%)", len(pairs), draws, 100 * len(pairs) / draws)
    image_channels = getattr(generator, "module", generator).image_channels
    path = save_synthetic_pairs(pairs, output_dir, image_channels, num_draws=draws)
    save_pair_grid(Path(output_dir) / "preview.png", pairs[:num_preview], image_channels)
    logger.info("synthetic datalist: %s, preview: %s", path, Path(output_dir) / "preview.png")
    return path


class SyntheticPairDataset(Dataset):
    """
    Synthetic pairs held in memory, as the 2D items of a segmentation dataset: ``{"image": [C_img, H, W],
    "label": [C_mask, H, W], "case_id": "synthetic", "slice_index", "tumour_area"}``, the keys of
    :class:`~dhvae_monai.data.TumourSliceDataset`'s items, so the two concatenate.

    Build it from the files of the ``sample`` stage (:meth:`from_datalist`), straight from a generator
    (:meth:`from_generator`, no files), or by name of the source (:meth:`from_source`, for bundle configs).

    Args:
        pairs: ``[N, C_img + C_mask, H, W]`` with binary masks.
        image_channels: ``C_img``.
        transform: applied to each item (e.g. random flips).

    Example::

        synthetic = SyntheticPairDataset.from_datalist("runs/synthetic/synthetic_datalist.json", num_pairs=500)
        train = torch.utils.data.ConcatDataset([real_slices, synthetic])
    """

    def __init__(self, pairs: torch.Tensor, image_channels: int, transform: Callable | None = None) -> None:
        if pairs.ndim != 4 or pairs.shape[1] <= image_channels:
            raise ValueError(f"expected pairs [N, {image_channels} image + mask channels, H, W], got {tuple(pairs.shape)}.")
        self.pairs = pairs
        self.image_channels = image_channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        label = pair[self.image_channels :].clone()
        # the keys of TumourSliceDataset's items, so batches can mix real and synthetic slices
        item = {
            "image": pair[: self.image_channels].clone(),
            "label": label,
            "case_id": "synthetic",
            "slice_index": index,
            "tumour_area": float(label.amax(0).sum()),
        }
        return self.transform(item) if self.transform is not None else item

    @classmethod
    def from_datalist(
        cls, datalist: str | os.PathLike, num_pairs: int, transform: Callable | None = None
    ) -> SyntheticPairDataset:
        """
        The first ``num_pairs`` pairs listed in a ``synthetic_datalist.json``.

        Raises:
            FileNotFoundError: the datalist does not exist (the ``sample`` stage has not run).
            ValueError: it lists fewer than ``num_pairs`` pairs, or a pair's image and mask differ in size.
        """
        datalist = Path(datalist)
        if not datalist.is_file():
            raise FileNotFoundError(
                f"synthetic datalist {datalist} not found: run the sample stage first, set synthetic_source to "
                "'generator' to draw pairs on the fly, or set num_synthetic to 0."
            )
        content = json.loads(datalist.read_text())
        items = content["training"]
        if len(items) < num_pairs:
            raise ValueError(
                f"{datalist} lists {len(items)} synthetic pairs but num_synthetic is {num_pairs}: re-run the sample "
                f"stage with num_synthetic >= {num_pairs}, or lower num_synthetic."
            )
        load = LoadImage(image_only=True, ensure_channel_first=True)
        pairs = []
        for item in items[:num_pairs]:
            image, label = (load(str(datalist.parent / item[key]))[..., 0].float() for key in ("image", "label"))
            if image.shape[1:] != label.shape[1:]:
                raise ValueError(f"{datalist.parent / item['image']}: image {tuple(image.shape)} vs mask {tuple(label.shape)}.")
            pairs.append(torch.cat([image.as_tensor(), label.as_tensor()]))
        return cls(torch.stack(pairs), int(content["image_channels"]), transform)

    @classmethod
    def from_generator(
        cls,
        generator: torch.nn.Module,
        num_pairs: int,
        min_tumour_area: float = 200.0,
        seed: int = 0,
        transform: Callable | None = None,
    ) -> SyntheticPairDataset:
        """``num_pairs`` pairs drawn now from ``generator`` (see :func:`~dhvae_monai.data.draw_synthetic_pairs`)."""
        pairs, _ = draw_synthetic_pairs(generator, num_pairs, min_tumour_area, seed=seed, progress=True)
        return cls(pairs, getattr(generator, "module", generator).image_channels, transform)

    @classmethod
    def from_source(
        cls,
        source: str,
        num_pairs: int,
        image_channels: int,
        datalist: str | os.PathLike | None = None,
        generator: torch.nn.Module | None = None,
        generator_weights: str | os.PathLike | None = None,
        min_tumour_area: float = 200.0,
        seed: int = 0,
        transform: Callable | None = None,
    ) -> SyntheticPairDataset:
        """
        ``num_pairs`` pairs from ``source``: ``"files"`` reads ``datalist``; ``"generator"`` loads
        ``generator_weights`` into ``generator`` and draws. ``num_pairs = 0`` gives an empty dataset and reads
        nothing (the no-augmentation baseline).

        Raises:
            ValueError: an unknown ``source``, or a negative ``num_pairs``.
        """
        if source not in SYNTHETIC_SOURCES:
            raise ValueError(f"synthetic_source must be one of {SYNTHETIC_SOURCES}, got {source!r}.")
        if num_pairs < 0:
            raise ValueError(f"num_synthetic must be >= 0, got {num_pairs}.")
        if num_pairs == 0:
            return cls(torch.zeros(0, image_channels + 1, 1, 1), image_channels, transform)
        if source == "files":
            return cls.from_datalist(datalist, num_pairs, transform)
        generator = load_weights(generator, generator_weights, produced_by="train_generator")
        return cls.from_generator(generator, num_pairs, min_tumour_area, seed, transform)
