"""The sample quality of a trained generator against real tumour slices, as one report: scores and a preview grid."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from monai.utils import convert_to_tensor
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dhvae_monai.metrics.acceptance import prior_acceptance
from dhvae_monai.metrics.diversity import (
    MS_SSIM_KERNEL_SIZE,
    MS_SSIM_WEIGHTS,
    mean_pairwise_ms_ssim,
    random_distinct_pairs,
)
from dhvae_monai.metrics.feature_distance import feature_distance
from dhvae_monai.metrics.pooled_features import PooledLayerFeatures
from dhvae_monai.metrics.reconstruction import reconstruction_scores
from dhvae_monai.utils.atomic import atomic_path
from dhvae_monai.visualize.pair_grid import make_pair_grid

__all__ = ["PREVIEW_NAME", "REPORT_NAME", "SampleQualityReport", "evaluate_sample_quality"]

REPORT_NAME = "quality.json"
PREVIEW_NAME = "real_vs_synthetic.png"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleQualityReport:
    """
    What :func:`evaluate_sample_quality` measured.

    Attributes:
        scores: nested dictionaries of numbers and strings, as written to ``quality.json``; NaN where a score could not
            be computed, and ``scores["notes"]`` says why.
        real_pairs: the real pairs shown in the preview, ``[R, C_img + C_mask, H, W]``.
        synthetic_pairs: the kept synthetic pairs shown in the preview, ``[S, C_img + C_mask, H, W]``.
        image_channels: ``C_img``.

    Example::

        report = evaluate_sample_quality(generator, validation_slices, segmenter)
        report.save("runs/quality")   # quality.json, real_vs_synthetic.png
    """

    scores: dict[str, Any]
    real_pairs: torch.Tensor
    synthetic_pairs: torch.Tensor
    image_channels: int

    def summary(self) -> str:
        """The scores in one line, for a log."""
        reconstruction, acceptance = self.scores["reconstruction"], self.scores["acceptance"]
        diversity, distance = self.scores["diversity"], self.scores["feature_distance"]
        synthetic, real = distance["synthetic_vs_real"], distance["real_vs_real"]
        return (
            f"reconstruction PSNR {_number(reconstruction['psnr'], '.1f')} dB, SSIM {_number(reconstruction['ssim'])}, "
            f"mask Dice {_number(reconstruction['mask_dice'])}; {acceptance['num_kept']}/{acceptance['num_draws']} "
            f"draws kept ({_number(100 * acceptance['acceptance_rate'], '.1f')} %), "
            f"{_number(100 * acceptance['border_fraction'], '.1f')} % of them on the border; "
            f"MS-SSIM {_number(diversity['ms_ssim_synthetic'])} between samples "
            f"(real {_number(diversity['ms_ssim_real'])}); FID {_number(synthetic['fid'], '.2f')} "
            f"(real halves {_number(real['fid'], '.2f')}), MMD {_number(synthetic['mmd'], '.3g')} "
            f"(real halves {_number(real['mmd'], '.3g')})"
        )

    def preview_grid(self, num_columns: int = 8, gap: int = 6) -> np.ndarray:
        """
        The real pairs' rows above the synthetic pairs' rows (:func:`~dhvae_monai.visualize.make_pair_grid`: image in
        grey, mask outlines in colour), separated by a grey band ``gap`` pixels high.

        Returns:
            ``uint8`` RGB array ``[H, W, 3]``.
        """
        blocks = [
            make_pair_grid(pairs, self.image_channels, num_columns)
            for pairs in (self.real_pairs, self.synthetic_pairs)
            if len(pairs)
        ]
        width = max(block.shape[1] for block in blocks)
        band = np.full((gap, width, 3), 128, dtype=np.uint8)
        rows = []
        for block in blocks:
            rows += [np.pad(block, ((0, 0), (0, width - block.shape[1]), (0, 0))), band]
        return np.concatenate(rows[:-1])

    def save(self, output_dir: str | os.PathLike, num_columns: int = 8) -> tuple[Path, Path]:
        """
        Write ``quality.json`` (NaN and infinity as ``null``) and ``real_vs_synthetic.png`` (:meth:`preview_grid`)
        into ``output_dir``, each atomically, and log :meth:`summary`.

        Returns:
            the two paths.
        """
        output_dir = Path(output_dir)
        report, preview = output_dir / REPORT_NAME, output_dir / PREVIEW_NAME
        with atomic_path(report) as temporary:
            temporary.write_text(json.dumps(_json_ready(self.scores), indent=2, allow_nan=False) + "\n")
        with atomic_path(preview) as temporary:
            Image.fromarray(self.preview_grid(num_columns)).save(temporary, format="PNG")
        logger.info("sample quality: %s", self.summary())
        logger.info("written: %s, %s", report, preview)
        return report, preview


@torch.no_grad()
def evaluate_sample_quality(
    generator: nn.Module,
    real_slices: Dataset | Sequence[dict],
    segmenter: nn.Module,
    feature_layer: str = "down_4",
    num_samples: int = 256,
    min_tumour_area: float = 200.0,
    mask_threshold: float = 0.5,
    num_diversity_pairs: int = 100,
    batch_size: int = 32,
    num_preview: int = 16,
    seed: int = 0,
) -> SampleQualityReport:
    """
    Score a trained generator against the real tumour slices of held-out (validation) patients:

    - **reconstruction**: :func:`~dhvae_monai.metrics.reconstruction.reconstruction_scores` of the real slices
      through the generator's forward pass (after the flow);
    - **acceptance**: of ``num_samples`` seeded prior draws, the fraction kept by the tumour-area filter, and the
      fraction of kept pairs with tumour on the image border (:func:`~dhvae_monai.metrics.acceptance.prior_acceptance`);
    - **diversity**: :func:`~dhvae_monai.metrics.diversity.mean_pairwise_ms_ssim` of the kept pairs' images, beside
      the same on the real slices (the reference: a generator's samples should not be more alike than real slices);
    - **feature distance**: :func:`~dhvae_monai.metrics.feature_distance.feature_distance` (FID, MMD) between the
      kept pairs and the real slices in ``segmenter``'s pooled ``feature_layer`` features (centred on the real slices'
      mean and divided by their total spread, the square root of the trace of their covariance, so MMD is the squared
      distance between the feature means relative to the real slices' total variance), beside the same between
      two halves of the real slices (split by patient when there are at least two, else alternate slices, which
      makes the reference optimistic) as the scale of a distance between real sets. The halves hold half as many slices, so their FID has a larger
      small-sample bias: read it as an upper estimate of the real-to-real distance. Score every generator with the
      same segmenter (e.g. one trained on real slices only) to compare them in one feature space.

    Every random choice is seeded by ``seed``, and the global random state is restored afterwards: the same seed and
    batch size give the same report. Everything runs without gradients, in batches of ``batch_size``; the real and
    the kept synthetic images are held on the CPU (``N x C_img x H x W`` floats each).

    Args:
        generator: a trained :class:`~dhvae_monai.networks.nets.DHVAE`.
        real_slices: items with ``"image"``, ``"label"`` and optionally ``"case_id"`` (e.g. a
            :class:`~dhvae_monai.data.TumourSliceDataset` of the validation patients).
        segmenter: the network giving the features (its input is the image channels), e.g. the trained
            :class:`~monai.networks.nets.BasicUNet`.
        feature_layer: the segmenter's layer whose globally average-pooled output is the feature vector (the
            ``BasicUNet`` bottleneck by default; see :class:`~dhvae_monai.metrics.pooled_features.PooledLayerFeatures`).
        num_samples: prior draws.
        min_tumour_area: the tumour-area filter's threshold, in pixels (the ``sample`` stage's).
        mask_threshold: probability above which a mask pixel is tumour.
        num_diversity_pairs: random image pairs per MS-SSIM mean (every pair when a set has fewer).
        batch_size: slices or draws per network pass.
        num_preview: real and synthetic pairs shown in the preview, each.
        seed: seed of every random choice.

    Returns:
        a :class:`SampleQualityReport`.

    Raises:
        ValueError: ``real_slices`` is empty, or ``segmenter`` has no layer ``feature_layer``.

    Example::

        report = evaluate_sample_quality(generator, validation_slices, segmenter, num_samples=1000)
        report.save("runs/quality")
    """
    network = getattr(generator, "module", generator)
    image_channels = network.image_channels
    extract = PooledLayerFeatures(segmenter, feature_layer)
    reconstruction = reconstruction_scores(network, real_slices, image_channels, mask_threshold, batch_size, seed)

    real_images, real_features, case_ids, real_preview = [], [], [], []
    for batch in DataLoader(real_slices, batch_size=batch_size, shuffle=False):
        images = convert_to_tensor(batch["image"], track_meta=False).float().cpu()
        real_images.append(images)
        real_features.append(extract(images).cpu())
        case_ids += list(batch.get("case_id", ["unknown"] * len(images)))
        if sum(len(pairs) for pairs in real_preview) < num_preview:
            masks = convert_to_tensor(batch["label"], track_meta=False).float().cpu()
            real_preview.append(torch.cat([images, masks], dim=1))
    real_image_tensor, real_feature_tensor = torch.cat(real_images), torch.cat(real_features)
    # raw pooled activations have arbitrary, layer-dependent scales (MMD in the hundreds, of either sign): in units of
    # the real slices' total spread, MMD is the squared distance between the feature means relative to the real
    # slices' total variance, comparable across layers, networks and repeats
    standardise = _Standardise(real_feature_tensor)
    real_feature_tensor = standardise(real_feature_tensor)

    acceptance = prior_acceptance(network, num_samples, min_tumour_area, mask_threshold, batch_size, seed)
    synthetic_images = acceptance.kept_pairs[:, :image_channels]
    synthetic_features = (
        standardise(torch.cat([extract(images).cpu() for images in synthetic_images.split(batch_size)]))
        if len(synthetic_images)
        else real_feature_tensor[:0]
    )

    notes: list[str] = []
    if not len(synthetic_images):
        notes.append(f"no prior draw passed the tumour-area filter (min_tumour_area {min_tumour_area}).")
    diversity: dict[str, Any] = {"scales": len(MS_SSIM_WEIGHTS), "kernel_size": MS_SSIM_KERNEL_SIZE}
    for name, images in (("synthetic", synthetic_images), ("real", real_image_tensor)):
        if len(images) >= 2:
            diversity[f"ms_ssim_{name}"] = mean_pairwise_ms_ssim(images, num_diversity_pairs, seed, batch_size)
            diversity[f"num_pairs_{name}"] = len(random_distinct_pairs(len(images), num_diversity_pairs, seed))
        else:
            diversity[f"ms_ssim_{name}"], diversity[f"num_pairs_{name}"] = math.nan, 0
            notes.append(f"ms_ssim_{name}: MS-SSIM between pairs needs at least 2 images, got {len(images)}.")

    half_a, half_b, split = _real_halves(case_ids, seed)
    if split == "slices":
        notes.append(
            "real_vs_real: the real slices come from one patient, so its halves are alternate slices; neighbouring "
            "slices look alike, so this reference distance is smaller than between two patients."
        )
    distances = {
        "synthetic_vs_real": feature_distance(synthetic_features, real_feature_tensor, seed),
        "real_vs_real": feature_distance(real_feature_tensor[half_a], real_feature_tensor[half_b], seed),
    }
    distance_scores: dict[str, dict] = {}
    for name, distance in distances.items():
        distance_scores[name] = {"fid": distance.fid, "mmd": distance.mmd, "num_samples": distance.num_samples}
        notes += [f"{name}: {note}" for note in distance.notes]
    distance_scores["real_vs_real"]["split"] = split
    scores = {
        "reconstruction": reconstruction,
        "acceptance": {
            "num_draws": acceptance.num_draws,
            "num_kept": len(acceptance.kept_pairs),
            "acceptance_rate": acceptance.acceptance_rate,
            "border_fraction": acceptance.border_fraction,
            "min_tumour_area": float(min_tumour_area),
        },
        "diversity": diversity,
        "feature_distance": {
            "layer": feature_layer,
            "num_features": real_feature_tensor.shape[1],
            "num_real": len(real_feature_tensor),
            "num_synthetic": len(synthetic_features),
            **distance_scores,
        },
        "seed": seed,
        "notes": notes,
    }
    return SampleQualityReport(
        scores, torch.cat(real_preview)[:num_preview], acceptance.kept_pairs[:num_preview], image_channels
    )


def _real_halves(case_ids: Sequence[str], seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Indices of two halves of the real slices: patients shuffled and dealt alternately, else alternate slices."""
    patients = sorted(set(case_ids))
    if len(patients) >= 2:
        order = torch.randperm(len(patients), generator=torch.Generator().manual_seed(seed))
        first_half = {patients[index] for index in order[::2].tolist()}
        in_first, split = torch.tensor([case_id in first_half for case_id in case_ids]), "patients"
    else:
        in_first, split = torch.arange(len(case_ids)) % 2 == 0, "slices"
    return in_first.nonzero().squeeze(1), (~in_first).nonzero().squeeze(1), split


def _json_ready(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has neither)."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _number(value: float, spec: str = ".3f") -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


class _Standardise:
    """
    Features in units of a reference set's total spread: ``(f - mean) / sqrt(trace(cov))``. One scale for every
    feature, not one per feature: per-feature scaling would blow the rounding noise of near-constant features up to
    the size of the informative ones.
    """

    def __init__(self, reference: torch.Tensor) -> None:
        reference = reference.double()
        self.mean = reference.mean(0)
        spread = float(reference.var(0).sum().sqrt()) if len(reference) > 1 else 0.0
        self.scale = spread if spread > 0 else 1.0

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features.double() - self.mean) / self.scale
