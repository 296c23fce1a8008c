from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from dhvae_monai.transforms.intensity import NormalizeByModalityd, ScaleIntensityPerSliced


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, len(values), 1, 1)


def brain(background: float, values: torch.Tensor) -> torch.Tensor:
    """A 1-channel volume: ``values`` inside a 6 x 6 x 4 box, ``background`` around it (corners included)."""
    volume = torch.full((1, 10, 10, 6), background)
    volume[0, 2:8, 2:8, 1:5] = values.view(6, 6, 4)
    return volume


def test_ct_window_and_pet_suv_range():
    ct = column(-1000.0, -200.0, 50.0, 300.0, 2000.0)
    pet = column(0.0, 2.5, 5.0, 10.0, 30.0)
    out = NormalizeByModalityd("image")({"image": torch.cat([pet, ct]), "modalities": ["pt", "ct"]})["image"]
    torch.testing.assert_close(out[0].flatten(), torch.tensor([0.0, 0.25, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(out[1].flatten(), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    wide = NormalizeByModalityd("image", modalities=("ct",), ct_window=(-1000.0, 1000.0))({"image": ct})["image"]
    torch.testing.assert_close(wide.flatten(), torch.tensor([0.0, 0.4, 0.525, 0.65, 1.0]))


def test_pet_percentiles_instead_of_a_fixed_suv_range():
    pet = torch.arange(101, dtype=torch.float32).view(1, 101, 1, 1)
    out = NormalizeByModalityd("image", modalities=("pt",), pet_percentiles=(0.0, 50.0))({"image": pet})["image"]
    assert float(out[0, 25]) == pytest.approx(0.5) and float(out[0, 50:].min()) == 1.0


@pytest.mark.parametrize("background", [0.0, -3.6])  # BraTS, and a z-scored volume whose background is negative
def test_mri_brain_percentiles_with_background_kept_at_zero(background):
    values = torch.linspace(-2.0, 7.0, 144)  # a brain holding values below 0 and below the background
    values[0], values[-1] = -50.0, 80.0  # outliers removed by the percentile clipping
    normalise = NormalizeByModalityd("image", modalities=("flair",), mri_percentiles=(1.0, 99.0))
    out = normalise({"image": brain(background, values)})["image"]
    inside = out[0, 2:8, 2:8, 1:5].flatten()
    assert float(out.sum()) == pytest.approx(float(inside.sum()))  # background exactly 0
    assert float(inside.min()) == 0.0 and float(inside.max()) == 1.0
    assert float(inside[1]) == 0.0 and float(inside[-2]) == 1.0  # beyond the clipped percentiles
    assert 0.4 < float(inside[72]) < 0.6  # the middle of the brain's range stays in the middle


def test_mri_without_brain_or_contrast():
    nothing = NormalizeByModalityd("image", modalities=("t1",))({"image": torch.zeros(1, 4, 4, 4)})["image"]
    assert float(nothing.abs().sum()) == 0.0
    flat = NormalizeByModalityd("image", modalities=("t2",))({"image": brain(0.0, torch.full((144,), 5.0))})["image"]
    assert float(flat.sum()) == 144.0  # a constant brain: shown uniformly, background 0


def test_channels_keep_their_own_rule_and_metadata():
    image = MetaTensor(torch.cat([brain(0.0, torch.linspace(1, 9, 144)), brain(-1000.0, torch.full((144,), 300.0))]))
    image.meta["filename_or_obj"] = "case.nii.gz"
    out = NormalizeByModalityd("image")({"image": image, "modalities": ["t1ce", "ct"]})["image"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "case.nii.gz"
    assert float(out[0].max()) == 1.0 and float(out[1].max()) == 1.0 and float(out[1, 0, 0, 0]) == 0.0


def test_normalisation_errors():
    with pytest.raises(ValueError, match="unknown modality 'dwi'"):
        NormalizeByModalityd("image", modalities=("dwi",))({"image": torch.zeros(1, 2, 2, 2)})
    with pytest.raises(ValueError, match=r"2 channel\(s\) need as many modality names, got \['pt'\]"):
        NormalizeByModalityd("image")({"image": torch.zeros(2, 2, 2, 2), "modalities": ["pt"]})
    with pytest.raises(ValueError, match="ct_window must be"):
        NormalizeByModalityd("image", ct_window=(300.0, -200.0))
    with pytest.raises(ValueError, match="pet_percentiles must be"):
        NormalizeByModalityd("image", pet_percentiles=(99.0,))


def test_per_slice_min_max():
    volume = torch.zeros(2, 3, 3, 3)
    volume[0, :, :, 0] = torch.arange(9.0).view(3, 3)  # spans [0, 8]
    volume[0, :, :, 1] = 0.5  # constant slice
    volume[1, :, :, 2] = torch.arange(9.0).view(3, 3) * 0.1 + 0.2
    image = MetaTensor(volume)
    out = ScaleIntensityPerSliced("image")({"image": image})["image"]
    assert isinstance(out, MetaTensor)
    torch.testing.assert_close(out[0, :, :, 0], torch.arange(9.0).view(3, 3) / 8)
    assert float(out[0, :, :, 1].abs().sum()) == 0.0 and float(out[0, :, :, 2].abs().sum()) == 0.0
    assert float(out[1, :, :, 2].min()) == 0.0 and float(out[1, :, :, 2].max()) == pytest.approx(1.0)
