from __future__ import annotations

import gzip
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import CacheDataset, DataLoader, MetaTensor, PersistentDataset
from monai.transforms import Invertd, LoadImage

from dhvae_monai.transforms.io import CHANNEL_FILES
from dhvae_monai.transforms.preprocessing import brats_volume_transforms, hecktor_volume_transforms

SMALL = (64, 64, 32)
BRATS_SEQUENCES = ("flair", "t1", "t1ce", "t2")


def check_volume(volume, image_channels, mask_channels, size=SMALL):
    """The shared contract of a preprocessed volume; returns (image, label)."""
    image, label = volume["image"], volume["label"]
    assert tuple(image.shape) == (image_channels, *size) and tuple(label.shape) == (mask_channels, *size)
    assert image.dtype == torch.float32 and label.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert set(label.unique().tolist()) <= {0.0, 1.0}
    assert all(float(label[c].sum()) > 0 for c in range(mask_channels))  # tumour in every region
    assert nib.aff2axcodes(np.asarray(image.affine)) == ("R", "A", "S")  # axial = last axis
    np.testing.assert_allclose(np.asarray(label.affine), np.asarray(image.affine))
    return image, label


# --------------------------------------------------------------------------------------------------------- real data
@pytest.fixture
def brats2018(real_data_dir):
    folder = real_data_dir / "brats" / "brainy_Brats18_2013_2_1"
    return {
        "image": [str(folder / f"Brats18_2013_2_1_{name}.nii.gz") for name in BRATS_SEQUENCES],
        "label": str(folder / "Brats18_2013_2_1_seg.nii.gz"),
        "case_id": "Brats18_2013_2_1",
        "modalities": list(BRATS_SEQUENCES),
        "label_convention": "brats2021",
    }


@pytest.fixture
def hecktor2020(real_data_dir):
    folder = real_data_dir / "hecktor" / "CHGJ015"
    return {
        "image": [str(folder / "CHGJ015_pt.nii.gz"), str(folder / "CHGJ015_ct.nii.gz")],
        "label": str(folder / "CHGJ015_ct_gtvt.nii.gz"),
        "case_id": "CHGJ015",
        "modalities": ["pt", "ct"],
        "label_convention": "hecktor2021",
    }


def test_real_brats2018_four_sequences_nested_regions(brats2018):
    transform = brats_volume_transforms(
        modalities=("t2", "flair"), regions=("WT", "TC", "ET"), spatial_size=SMALL, mri_scaling="volume"
    )
    volume = transform(brats2018)
    image, label = check_volume(volume, 2, 3)
    assert volume["modalities"] == ["t2", "flair"] and volume["case_id"] == "Brats18_2013_2_1"
    assert image.meta[CHANNEL_FILES] == [brats2018["image"][3], brats2018["image"][0]]  # channels in requested order
    assert bool((label[1] <= label[0]).all() and (label[2] <= label[1]).all())  # ET within TC within WT
    assert float(image[0].max()) == 1.0 and float(image[1].max()) == 1.0
    # the squared brain box fills the frame: little background left in the middle slice
    assert float((image[0, :, :, 16] > 0).float().mean()) > 0.5


def test_real_brats2015_z_scored_custom_case_per_slice(real_data_dir):
    folder = real_data_dir / "brats" / "deepmedic_brats2015_brats_2013_pat0001_1"
    item = {
        "image": [str(folder / "Flair_subtrMeanDivStd.nii.gz"), str(folder / "T1c_subtrMeanDivStd.nii.gz")],
        "label": str(folder / "OTMultiClass.nii.gz"),
        "case_id": "brats_2013_pat0001_1",
        "modalities": ["flair", "t1ce"],
        "label_convention": "brats2015",
    }
    volume = brats_volume_transforms(modalities=("flair", "t1ce"), regions=("WT", "TC", "ET"), spatial_size=SMALL)(item)
    image, label = check_volume(volume, 2, 3)
    # cropped to the brain's axial extent, each slice shows brain and spans [0, 1] (the paper's per-slice min-max);
    # the negative z-score background became 0
    assert bool((image.amax(dim=(1, 2)) == 1.0).all()) and bool((image.amin(dim=(1, 2)) == 0.0).all())
    corners = image[:, [0, -1]][:, :, [0, -1]]
    assert float(corners.abs().sum()) == 0.0
    # labels 1 necrosis, 3 non-enhancing, 4 enhancing make the core; 2 edema only the whole tumour
    assert float(label[0].sum()) > float(label[1].sum()) > float(label[2].sum())


def test_real_hecktor2020_pet_ct(hecktor2020):
    volume = hecktor_volume_transforms(modalities=("pt", "ct"), spatial_size=SMALL)(hecktor2020)
    image, label = check_volume(volume, 2, 1)
    pet, ct = image
    tumour = label[0] > 0
    assert float(pet[tumour].mean()) > 4 * float(pet[~tumour].mean())  # FDG-avid tumour
    assert 0.2 < float(ct[tumour].mean()) < 0.9  # soft tissue inside the [-200, 300] HU window
    pet_only = hecktor_volume_transforms(spatial_size=SMALL, mask_interpolation="linear")(hecktor2020)
    check_volume(pet_only, 1, 1)
    assert pet_only["modalities"] == ["pt"]


def test_real_hecktor_challenge_box_in_lps_mm(hecktor2020):
    mask = nib.load(hecktor2020["label"])
    voxels = np.argwhere(np.asarray(mask.dataobj) > 0)
    ras = nib.affines.apply_affine(mask.affine, np.stack([voxels.min(0), voxels.max(0)]))
    lps = ras * np.array([-1.0, -1.0, 1.0])
    low, high = lps.min(0) - 10.0, lps.max(0) + 10.0  # the tumour's box with a 10 mm margin, as the CSV stores it
    box = [low[0], high[0], low[1], high[1], low[2], high[2]]
    volume = hecktor_volume_transforms(spatial_size=(32, 32, 16))(dict(hecktor2020, bounding_box_mm=box))
    _, label = check_volume(volume, 1, 1, size=(32, 32, 16))
    assert float(label.mean()) > 0.03  # the tumour fills much of its own box (of a 144 mm box: < 0.001)


def test_real_hecktor_inverse_back_to_the_mask_grid(hecktor2020):
    transform = hecktor_volume_transforms()
    volume = transform(hecktor2020)
    image = volume["image"]  # at inference a prediction carries the image's history
    prediction = MetaTensor(volume["label"].as_tensor(), meta=image.meta, applied_operations=image.applied_operations)
    invert = Invertd("pred", transform=transform, orig_keys="image", nearest_interp=True)
    restored = invert(dict(volume, pred=prediction))["pred"]
    original = LoadImage(image_only=True, ensure_channel_first=True)(hecktor2020["label"])
    assert tuple(restored.shape) == tuple(original.shape)
    np.testing.assert_allclose(np.asarray(restored.affine), np.asarray(original.affine), atol=1e-4)
    overlap = float(((restored > 0.5) & (original > 0)).sum())
    assert 2 * overlap / (float((restored > 0.5).sum()) + float(original.sum())) > 0.8  # Dice of a 2.5 ml tumour

    inference = transform({key: value for key, value in hecktor2020.items() if key != "label"})
    assert "label" not in inference and tuple(inference["image"].shape) == (1, 128, 128, 64)


# ------------------------------------------------------------------------------------------------------ small cases
LPS = np.diag([-4.0, -4.0, 4.0, 1.0])
SHAPE = (24, 24, 16)


def write(path, array, affine=LPS):
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return str(path)


def brain_array(seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    volume = np.zeros(shape, np.float32)
    volume[4:20, 3:21, 2:14] = rng.uniform(100, 900, (16, 18, 12))
    return volume


def seg_array(value=2, shape=SHAPE):
    seg = np.zeros(shape, np.uint8)
    seg[8:14, 8:14, 5:10] = value
    seg[10:12, 10:12, 6:8] = 4 if value == 2 else value
    return seg


@pytest.fixture
def small_case(tmp_path):
    return {
        "image": [write(tmp_path / "flair.nii.gz", brain_array(0)), write(tmp_path / "t1.nii.gz", brain_array(1))],
        "label": write(tmp_path / "seg.nii.gz", seg_array()),
        "case_id": "small",
        "modalities": ["flair", "t1"],
        "label_convention": "brats2021",
    }


def test_msd_4d_file_gives_the_same_channels_as_separate_files(tmp_path, small_case):
    four_d = write(tmp_path / "BRATS_001.nii.gz", np.stack([brain_array(s) for s in range(4)], axis=-1))
    msd_seg = np.where(seg_array() == 4, 3, np.where(seg_array() > 0, 1, 0)).astype(np.uint8)  # brats2021 -> msd
    msd = {
        "image": four_d,
        "label": write(tmp_path / "BRATS_001_label.nii.gz", msd_seg),
        "case_id": "BRATS_001",
        "modalities": list(BRATS_SEQUENCES),
        "label_convention": "msd",
    }
    transform = brats_volume_transforms(modalities=("t1",), regions=("WT", "ET"), spatial_size=(16, 16, 8))
    from_4d = transform(msd)
    from_files = transform(small_case)
    check_volume(from_4d, 1, 2, size=(16, 16, 8))
    torch.testing.assert_close(from_4d["image"].as_tensor(), from_files["image"].as_tensor())
    torch.testing.assert_close(from_4d["label"].as_tensor(), from_files["label"].as_tensor())


def test_mask_interpolation_options_stay_binary(small_case):
    nearest = brats_volume_transforms(spatial_size=(10, 10, 6))(small_case)["label"]
    linear = brats_volume_transforms(spatial_size=(10, 10, 6), mask_interpolation="linear")(small_case)["label"]
    for label in (nearest, linear):
        assert set(label.unique().tolist()) == {0.0, 1.0}
    assert abs(float(nearest.sum()) - float(linear.sum())) <= 0.3 * float(nearest.sum())
    whole = brats_volume_transforms(spatial_size=(12, 12, 8), crop_foreground=False)(small_case)
    check_volume(whole, 1, 1, size=(12, 12, 8))
    with pytest.raises(ValueError, match="mask_interpolation"):
        brats_volume_transforms(mask_interpolation="cubic")
    with pytest.raises(ValueError, match="mri_scaling"):
        brats_volume_transforms(mri_scaling="histogram")
    with pytest.raises(ValueError, match="spatial_size"):
        hecktor_volume_transforms(spatial_size=(128, 128))


def test_inference_items_without_mask(small_case):
    unlabelled = {key: value for key, value in small_case.items() if key != "label"}
    volume = brats_volume_transforms(spatial_size=(16, 16, 8))(unlabelled)
    assert "label" not in volume and tuple(volume["image"].shape) == (1, 16, 16, 8)


def test_cache_dataset_and_bundle_config(small_case, tmp_path):
    config = ConfigParser(
        {
            "transform": {
                "_target_": "dhvae_monai.transforms.preprocessing.brats_volume_transforms",
                "modalities": ["t1", "flair"],
                "regions": ["WT", "ET"],
                "spatial_size": [16, 16, 8],
            }
        }
    )
    transform = config.get_parsed_content("transform")
    other = dict(small_case, case_id="other", image=small_case["image"][::-1], modalities=["t1", "flair"])
    dataset = CacheDataset([small_case, other], transform=transform, progress=False)
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert tuple(batch["image"].shape) == (2, 2, 16, 16, 8) and tuple(batch["label"].shape) == (2, 2, 16, 16, 8)
    assert batch["case_id"] == ["small", "other"]
    torch.testing.assert_close(batch["image"][0, 0], batch["image"][1, 0])  # t1 first, whatever the file order
    # MONAI's PersistentDataset stores plain tensors by default (its safe loading rejects the NIfTI header in meta)
    on_disk = PersistentDataset([small_case], transform=transform, cache_dir=tmp_path / "cache")
    on_disk[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cache file that fails to load is only a warning, then recomputed
        from_disk = on_disk[0]
    torch.testing.assert_close(from_disk["image"], dataset[0]["image"].as_tensor())


# -------------------------------------------------------------------------------------------------------- bad inputs
def pipeline_error(transform, item) -> Exception:
    """The ValueError / FileNotFoundError a pipeline raises, without MONAI's 'applying transform' RuntimeError."""
    with pytest.raises((ValueError, FileNotFoundError, RuntimeError)) as raised:
        transform(item)
    error = raised.value
    while not isinstance(error, (ValueError, FileNotFoundError)) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, (ValueError, FileNotFoundError)), repr(raised.value)
    return error


def test_bad_inputs_name_the_file_and_the_problem(tmp_path, small_case):
    transform = brats_volume_transforms(modalities=("flair", "t1"), spatial_size=(8, 8, 4))
    transform(small_case)
    flair = brain_array(0)
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(open(small_case["image"][0], "rb").read())[:400])
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    moved = LPS.copy()
    moved[:3, 3] = 2.0
    nan = np.where(flair > 800, np.nan, flair)
    cases = {
        "truncated": ({"image": [str(truncated), small_case["image"][1]]}, "cannot read .*truncated.nii.gz: not a"),
        "not an image": ({"image": [str(text), small_case["image"][1]]}, "cannot read .*notes.nii.gz"),
        "missing": ({"label": str(tmp_path / "absent.nii.gz")}, "absent.nii.gz: no such file"),
        "4d image": (
            {"image": [write(tmp_path / "four.nii.gz", np.stack([flair, flair], -1)), small_case["image"][1]]},
            "four.nii.gz: expected a 3D volume, got a 4D file of 2 volumes",
        ),
        "4d label": (
            {"label": write(tmp_path / "seg4d.nii.gz", np.stack([seg_array()] * 2, -1))},
            "seg4d.nii.gz: expected a 3D volume",
        ),
        "shape": (
            {"image": [write(tmp_path / "small.nii.gz", flair[:20]), write(tmp_path / "t1_small.nii.gz", flair[:20])]},
            "seg.nii.gz .* and .*small.nii.gz are not on the same voxel grid: shape",
        ),
        "sequences apart": (
            {"image": [small_case["image"][0], write(tmp_path / "t1_moved.nii.gz", flair, moved)]},
            "t1_moved.nii.gz \\(t1\\) and .*flair.nii.gz \\(flair\\) are not on the same voxel grid",
        ),
        "mask apart": (
            {"label": write(tmp_path / "seg_moved.nii.gz", seg_array(), moved)},
            "seg_moved.nii.gz .* not on the same voxel grid",
        ),
        "nan": (
            {"image": [small_case["image"][0], write(tmp_path / "t1_nan.nii.gz", nan)]},
            "t1_nan.nii.gz: .* NaN or infinite",
        ),
        "label value": (
            {"label": write(tmp_path / "seg3.nii.gz", seg_array(3))},
            r"seg3.nii.gz: unexpected label value\(s\) \[3.0\]",
        ),
        "empty": (
            {"label": write(tmp_path / "empty.nii.gz", np.zeros(SHAPE, np.uint8))},
            "empty.nii.gz: the mask is empty",
        ),
        "modality": ({"modalities": ["flair", "t2"]}, r"has modalities \['flair', 't2'\], not \['t1'\]"),
    }
    for name, (change, message) in cases.items():
        error = pipeline_error(transform, dict(small_case, **change))
        assert re.search(message, str(error)), f"{name}: {error}"
    missing_mask = dict(small_case, label=str(tmp_path / "absent.nii.gz"))
    assert isinstance(pipeline_error(transform, missing_mask), FileNotFoundError)
    empty = dict(small_case, label=str(tmp_path / "empty.nii.gz"))
    assert float(brats_volume_transforms(spatial_size=(8, 8, 4), require_tumour=False)(empty)["label"].sum()) == 0.0
