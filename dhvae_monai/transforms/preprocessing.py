"""Volume preprocessing pipelines for BraTS and HECKTOR: datalist item in, volume on the target grid out."""

from __future__ import annotations

from typing import Sequence

from monai.transforms import AsDiscreted, Compose, CropForegroundd, EnsureTyped, Orientationd, Resized

from dhvae_monai.transforms.intensity import NormalizeByModalityd
from dhvae_monai.transforms.io import LoadTumourCased
from dhvae_monai.transforms.labels import TumourRegionsd
from dhvae_monai.transforms.spatial import CropHeadNeckd

__all__ = ["brats_volume_transforms", "hecktor_volume_transforms"]

MASK_INTERPOLATIONS = ("nearest", "linear")


def _resize(spatial_size: Sequence[int], mask_interpolation: str) -> list:
    """Resize image (trilinear) and mask; a linearly resized mask is thresholded at 0.5 so it stays binary."""
    if mask_interpolation not in MASK_INTERPOLATIONS:
        raise ValueError(f"mask_interpolation must be one of {MASK_INTERPOLATIONS}, got {mask_interpolation!r}.")
    label_mode = "nearest" if mask_interpolation == "nearest" else "trilinear"
    transforms = [
        Resized(("image", "label"), spatial_size=tuple(spatial_size), mode=("trilinear", label_mode), allow_missing_keys=True)
    ]
    if mask_interpolation == "linear":
        transforms.append(AsDiscreted("label", threshold=0.5, allow_missing_keys=True))
    return transforms


def brats_volume_transforms(
    modalities: Sequence[str] = ("flair",),
    regions: Sequence[str] = ("WT",),
    spatial_size: Sequence[int] = (128, 128, 64),
    mri_scaling: str = "slice",
    mri_percentiles: tuple[float, float] = (0.5, 99.5),
    mask_interpolation: str = "nearest",
    require_tumour: bool = True,
    label_convention: str | None = None,
) -> Compose:
    """
    Preprocessing of a brain MRI case (BraTS, MSD, or any custom layout of skull-stripped MRI).

    Load the chosen sequences and the mask on one grid (:class:`LoadTumourCased`), reorient to RAS (axial = last
    axis), map labels to the tumour regions, crop to the brain's bounding box, resize to ``spatial_size`` (the paper's
    128 x 128 axial x 64 slices: it resamples each volume by ``shape / target`` and crops, which amounts to this
    anisotropic resize of the brain box), then normalise each sequence to [0, 1].

    Args:
        modalities: sequences, from ``flair``, ``t1``, ``t1ce``, ``t2``; channel order of the output.
        regions: tumour regions as mask channels: ``WT``, ``TC``, ``ET`` (the paper: ``WT``).
        spatial_size: output grid (H, W, D), D axial.
        mri_scaling: ``"slice"`` (min-max per axial slice, as the paper) or ``"volume"``.
        mri_percentiles: brain-intensity percentiles kept before scaling.
        mask_interpolation: ``"nearest"`` (default) or ``"linear"`` (trilinear then threshold 0.5, as the authors).
        require_tumour: fail on a case whose mask is empty (training data); set False for inference-only items.
        label_convention: override the items' ``label_convention``.

    Returns:
        a ``Compose`` mapping a datalist item to ``{"image": [C, H, W, D] in [0, 1], "label": [R, H, W, D] binary,
        ...item keys}``.

    Example::

        transform = brats_volume_transforms(modalities=("flair",), regions=("WT",))
        volume = transform(datalist["training"][0])
    """
    return Compose(
        [
            LoadTumourCased(modalities=modalities),
            Orientationd(("image", "label"), axcodes="RAS", labels=None, allow_missing_keys=True),
            TumourRegionsd("label", regions=regions, convention=label_convention, require_tumour=require_tumour, allow_missing_keys=True),
            CropForegroundd(("image", "label"), source_key="image", allow_missing_keys=True),
            *_resize(spatial_size, mask_interpolation),
            NormalizeByModalityd("image", mri_percentiles=mri_percentiles, mri_scaling=mri_scaling),
            EnsureTyped(("image", "label"), dtype="float32", allow_missing_keys=True),
        ]
    )


def hecktor_volume_transforms(
    modalities: Sequence[str] = ("pt",),
    regions: Sequence[str] = ("GTV",),
    spatial_size: Sequence[int] = (128, 128, 64),
    box_size_mm: float | Sequence[float] = 144.0,
    pet_suv_range: tuple[float, float] = (0.0, 10.0),
    ct_window: tuple[float, float] = (-200.0, 300.0),
    mask_interpolation: str = "nearest",
    require_tumour: bool = True,
    label_convention: str | None = None,
) -> Compose:
    """
    Preprocessing of a head-and-neck PET/CT case (HECKTOR 2021 / 2022 or a custom layout).

    Load the chosen modalities and the mask, resampling PET onto the CT / mask grid (HECKTOR's PET is coarser);
    reorient to RAS; map labels to regions; crop a ``box_size_mm`` head-and-neck box (:class:`CropHeadNeckd`: the
    challenge box when the item has one, else centred on the body); resize to ``spatial_size``; clip and scale PET SUV
    and the CT window to [0, 1]. The paper used PET alone; PET + CT is one argument away.

    Args:
        modalities: ``("pt",)``, ``("ct",)`` or ``("pt", "ct")``.
        regions: ``GTV`` (primary and nodes together), ``GTVp``, ``GTVn``.
        spatial_size: output grid (H, W, D), D axial.
        box_size_mm: head-and-neck box edge(s) in mm.
        pet_suv_range: SUV range mapped to [0, 1].
        ct_window: HU window mapped to [0, 1].
        mask_interpolation: ``"nearest"`` or ``"linear"`` (then threshold 0.5).
        require_tumour: fail on an empty mask.
        label_convention: override the items' ``label_convention``.

    Returns:
        a ``Compose`` mapping a datalist item to the preprocessed volume dictionary.

    Example::

        transform = hecktor_volume_transforms(modalities=("pt", "ct"), regions=("GTVp", "GTVn"))
    """
    reference = "ct" if "ct" in modalities else modalities[0]
    body_threshold = -500.0 if reference == "ct" else 0.3
    return Compose(
        [
            LoadTumourCased(modalities=modalities, reference_modality=reference, resample_modalities=("pt",)),
            Orientationd(("image", "label"), axcodes="RAS", labels=None, allow_missing_keys=True),
            TumourRegionsd("label", regions=regions, convention=label_convention, require_tumour=require_tumour, allow_missing_keys=True),
            CropHeadNeckd(
                ("image", "label"),
                box_size_mm=box_size_mm,
                body_key="image",
                body_channel=list(modalities).index(reference),
                body_threshold=body_threshold,
                allow_missing_keys=True,
            ),
            *_resize(spatial_size, mask_interpolation),
            NormalizeByModalityd("image", pet_suv_range=pet_suv_range, ct_window=ct_window),
            EnsureTyped(("image", "label"), dtype="float32", allow_missing_keys=True),
        ]
    )
