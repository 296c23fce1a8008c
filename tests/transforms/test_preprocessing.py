from __future__ import annotations

import gzip
import re

import nibabel as nib
import numpy as np
import pytest
import torch

from dhvae_monai.data import make_datalist, make_phantom_dataset
from dhvae_monai.transforms import (
    CropHeadNeckd,
    LoadTumourCased,
    NormalizeByModalityd,
    TumourRegionsd,
    brats_volume_transforms,
    hecktor_volume_transforms,
)

SMALL = (32, 32, 16)


def _check_volume(volume, image_channels, mask_channels, size=SMALL):
    image, label = volume["image"], volume["label"]
    assert tuple(image.shape) == (image_channels, *size) and tuple(label.shape) == (mask_channels, *size)
    assert image.dtype == torch.float32 and label.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert set(label.unique().tolist()) == {0.0, 1.0}
    assert nib.aff2axcodes(np.asarray(image.affine)) == ("R", "A", "S")  # axial = last axis
    return image, label


def test_real_brats2018_case_all_sequences_and_regions(real_data_dir):
    item = make_datalist(real_data_dir / "brats" / "brainy_Brats18_2013_2_1", val_fraction=0, test_fraction=0)["training"][0]
    volume = brats_volume_transforms(
        modalities=("t2", "flair"), regions=("WT", "TC", "ET"), spatial_size=SMALL, mri_scaling="volume"
    )(item)
    image, label = _check_volume(volume, 2, 3)
    assert image.meta["modalities"] == ["t2", "flair"]  # channels in the requested order
    whole, core, enhancing = (label[c].sum() for c in range(3))
    assert whole >= core >= enhancing > 0  # nested BraTS regions
    assert float(image[0].max()) == pytest.approx(1.0)
    assert volume["case_id"] == "Brats18_2013_2_1"


def test_real_brats2015_custom_layout_z_scored(real_data_dir):
    root = real_data_dir / "brats" / "deepmedic_brats2015_brats_2013_pat0001_1"
    item = make_datalist(
        root, layout="custom", patterns={"flair": "Flair_*.nii.gz", "t1ce": "T1c_*.nii.gz", "label": "OTMultiClass.nii.gz"},
        label_convention="brats2015", val_fraction=0, test_fraction=0,
    )["training"][0]
    image, label = _check_volume(brats_volume_transforms(modalities=("flair", "t1ce"), regions=("WT", "TC"), spatial_size=SMALL)(item), 2, 2)
    # negative z-scores: the background (volume minimum) maps to 0, the brain spreads over [0, 1]
    assert float(image[0].mean()) > 0.05


def test_real_hecktor2020_case_pet_ct(real_data_dir):
    item = make_datalist(real_data_dir / "hecktor", val_fraction=0, test_fraction=0)["training"][0]
    image, label = _check_volume(hecktor_volume_transforms(modalities=("pt", "ct"), spatial_size=SMALL)(item), 2, 1)
    pet, ct = image
    assert float(pet[label[0] > 0].mean()) > 3 * float(pet[label[0] == 0].mean())  # hot tumour


def test_hecktor_phantom_pet_resampled_and_regions(tmp_path):
    make_phantom_dataset(tmp_path, "hecktor2022", num_cases=1)
    item = make_datalist(tmp_path, val_fraction=0, test_fraction=0)["training"][0]
    loaded = LoadTumourCased(modalities=("pt", "ct"), reference_modality="ct", resample_modalities=("pt",))(item)
    assert loaded["image"].shape[1:] == loaded["label"].shape[1:] == (96, 96, 48)  # PET now on the CT grid
    volume = hecktor_volume_transforms(modalities=("pt",), regions=("GTVp", "GTVn"), spatial_size=SMALL)(item)
    _, label = _check_volume(volume, 1, 2)
    assert label[0].sum() > 0 and label[1].sum() > 0 and not (label[0] * label[1]).any()


def test_msd_4d_channels_selected_by_name(tmp_path):
    make_phantom_dataset(tmp_path, "msd", num_cases=1, shape=(32, 32, 24))
    item = make_datalist(tmp_path, val_fraction=0, test_fraction=0)["training"][0]
    t2_only = LoadTumourCased(modalities=("t2",))(item)
    everything = LoadTumourCased()(item)
    torch.testing.assert_close(t2_only["image"][0], everything["image"][3])
    _check_volume(brats_volume_transforms(modalities=("t1ce",), spatial_size=SMALL)(item), 1, 1)


def test_mask_interpolation_stays_binary(tmp_path):
    make_phantom_dataset(tmp_path, "brats2021", num_cases=1, shape=(32, 32, 24))
    item = make_datalist(tmp_path, val_fraction=0, test_fraction=0)["training"][0]
    nearest = brats_volume_transforms(spatial_size=(20, 20, 10))(item)["label"]
    linear = brats_volume_transforms(spatial_size=(20, 20, 10), mask_interpolation="linear")(item)["label"]
    for label in (nearest, linear):
        assert set(label.unique().tolist()) == {0.0, 1.0}
    assert abs(float(nearest.sum()) - float(linear.sum())) < 0.25 * float(nearest.sum())
    with pytest.raises(ValueError, match="mask_interpolation"):
        brats_volume_transforms(mask_interpolation="cubic")


def test_intensity_rules_per_modality():
    ct = torch.tensor([-1000.0, -200.0, 50.0, 300.0, 2000.0]).view(1, 5, 1, 1)
    pet = torch.tensor([0.0, 2.5, 5.0, 10.0, 30.0]).view(1, 5, 1, 1)
    out = NormalizeByModalityd("image", modalities=("ct", "pt"))({"image": torch.cat([ct, pet])})["image"]
    torch.testing.assert_close(out[0].flatten(), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(out[1].flatten(), torch.tensor([0.0, 0.25, 0.5, 1.0, 1.0]))
    mri = torch.zeros(1, 4, 4, 2)
    mri[0, 1:3, 1:3, 0] = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    mri[0, 1:3, 1:3, 1] = torch.tensor([[100.0, 100.0], [100.0, 200.0]])
    per_slice = NormalizeByModalityd("image", modalities=("flair",), mri_percentiles=(0, 100), mri_scaling="slice")({"image": mri})["image"]
    assert float(per_slice[0, 1, 1, 0]) == 0.0 and float(per_slice[0, 2, 2, 0]) == 1.0 and float(per_slice[0, 2, 2, 1]) == 1.0
    assert float(per_slice[0, 0, 0, 0]) == 0.0  # background stays 0
    with pytest.raises(ValueError, match="unknown modality"):
        NormalizeByModalityd("image", modalities=("dwi",))({"image": mri})


def test_tumour_regions_per_convention():
    seg = torch.tensor([0, 1, 2, 4]).view(1, 4, 1, 1).float()
    regions = TumourRegionsd("label", regions=("WT", "TC", "ET"))({"label": seg, "label_convention": "brats2021"})["label"]
    assert regions[:, :, 0, 0].tolist() == [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    msd = torch.tensor([0, 1, 2, 3]).view(1, 4, 1, 1).float()  # 1 edema, 2 non-enhancing, 3 enhancing
    regions = TumourRegionsd("label", regions=("TC",), convention="msd")({"label": msd})["label"]
    assert regions[0, :, 0, 0].tolist() == [0, 0, 1, 1]
    hecktor = torch.tensor([0, 1, 2]).view(1, 3, 1, 1).float()
    regions = TumourRegionsd("label", regions=("GTVp", "GTVn", "GTV"), convention="hecktor2022")({"label": hecktor})["label"]
    assert regions[:, :, 0, 0].tolist() == [[0, 1, 0], [0, 0, 1], [0, 1, 1]]
    with pytest.raises(ValueError, match="cannot be made"):
        TumourRegionsd("label", regions=("GTVn",), convention="hecktor2021")({"label": hecktor.clamp(max=1)})


def test_hecktor_crop_uses_the_challenge_box(tmp_path):
    make_phantom_dataset(tmp_path, "hecktor2021", num_cases=1)
    item = make_datalist(tmp_path, val_fraction=0, test_fraction=0)["training"][0]
    loaded = TumourRegionsd("label")(LoadTumourCased(modalities=("ct",))(item))
    cropped = CropHeadNeckd(("image", "label"))(loaded)
    # 144 mm = 72 voxels in-plane and 48 axially, less what falls outside the 96 x 96 x 48 volume
    assert all(60 <= n <= 72 for n in cropped["image"].shape[1:3]) and cropped["image"].shape[3] <= 48
    assert cropped["image"].shape[1:] != loaded["image"].shape[1:]
    assert float(cropped["label"].sum()) == float(loaded["label"].sum())  # the tumour is inside the box
    without_box = CropHeadNeckd(("image", "label"))({k: v for k, v in loaded.items() if k != "bounding_box_mm"})
    assert tuple(without_box["image"].shape[1:]) == (72, 72, 48)  # centred: the whole 144 mm axial extent


# ----------------------------------------------------------------------------------------------- bad inputs
def _write(path, array, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return str(path)


@pytest.fixture
def good_case(tmp_path):
    image = np.random.default_rng(0).uniform(1, 100, (16, 16, 8)).astype(np.float32)
    label = np.zeros((16, 16, 8), np.uint8)
    label[4:8, 4:8, 2:6] = 2
    return {
        "image": [_write(tmp_path / "flair.nii.gz", image)],
        "label": _write(tmp_path / "seg.nii.gz", label),
        "modalities": ["flair"],
        "label_convention": "brats2021",
        "case_id": "case",
    }, image, label


def test_bad_inputs_name_the_file_and_problem(tmp_path, good_case):
    item, image, label = good_case
    transform = brats_volume_transforms(spatial_size=(8, 8, 4))
    assert transform(item)["label"].sum() > 0

    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress((tmp_path / "flair.nii.gz").read_bytes())[:300])
    cases = {
        "truncated": (dict(item, image=[str(truncated)]), "cannot read .*truncated.nii.gz"),
        "not nifti": (dict(item, image=[str(_text(tmp_path / "notes.nii.gz"))]), "cannot read .*notes.nii.gz"),
        "missing": (dict(item, image=[str(tmp_path / "absent.nii.gz")]), "cannot read .*absent.nii.gz"),
        "shape": (dict(item, image=[_write(tmp_path / "small.nii.gz", image[:8])]), "small.nii.gz.*not on the same grid.*shape"),
        "affine": (dict(item, image=[_write(tmp_path / "moved.nii.gz", image, np.diag([2.0, 2.0, 2.0, 1.0]))]), "moved.nii.gz.*not on the same grid"),
        "4d": (dict(item, image=[_write(tmp_path / "four.nii.gz", np.stack([image, image], -1))]), "four.nii.gz: expected a 3D volume, got a 4D"),
        "nan": (dict(item, image=[_write(tmp_path / "nan.nii.gz", np.where(image > 90, np.nan, image))]), "nan.nii.gz: .* NaN or infinite"),
        "labels": (dict(item, label=_write(tmp_path / "seg3.nii.gz", np.where(label > 0, 3, 0).astype(np.uint8))), r"seg3.nii.gz: unexpected label value\(s\) \[3.0\]"),
        "empty": (dict(item, label=_write(tmp_path / "empty.nii.gz", np.zeros_like(label))), "empty.nii.gz: the mask is empty"),
        "4d label": (dict(item, label=_write(tmp_path / "seg4d.nii.gz", np.stack([label, label], -1))), "seg4d.nii.gz: expected a 3D volume"),
    }
    for name, (bad_item, message) in cases.items():
        assert re.search(message, _error_of(transform, bad_item)), name
    assert "has modalities ['flair'], not ['t2']" in _error_of(brats_volume_transforms(modalities=("t2",)), item)
    # inference-time items without a mask load fine, and an empty mask is allowed when not required
    assert "label" not in brats_volume_transforms(spatial_size=(8, 8, 4))({k: v for k, v in item.items() if k != "label"})
    empty = dict(item, label=str(tmp_path / "empty.nii.gz"))
    assert brats_volume_transforms(spatial_size=(8, 8, 4), require_tumour=False)(empty)["label"].sum() == 0


def _error_of(transform, item) -> str:
    """The message of the ValueError a pipeline raises (MONAI's Compose wraps it in a RuntimeError)."""
    with pytest.raises((ValueError, RuntimeError)) as error:
        transform(item)
    cause = error.value
    while not isinstance(cause, ValueError) and cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, ValueError), repr(error.value)
    return str(cause)


def _text(path):
    path.write_text("not an image")
    return path
