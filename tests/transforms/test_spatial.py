from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from dhvae_monai.transforms.spatial import CropHeadNeckd, SquareCropForegroundd

# ----------------------------------------------------------------------------------------------- SquareCropForegroundd


def test_brain_box_squared_in_plane_and_inverted():
    image = torch.zeros(1, 20, 20, 10)
    image[0, 6:10, 2:14, 3:7] = 1.0  # 4 x 12 in-plane, 4 slices
    label = (image > 0).float()
    crop = SquareCropForegroundd(("image", "label"), source_key="image")
    case = crop({"image": MetaTensor(image), "label": MetaTensor(label)})
    assert tuple(case["image"].shape) == (1, 12, 12, 4) and tuple(case["label"].shape) == (1, 12, 12, 4)
    assert float(case["image"].sum()) == float(image.sum())  # the brain is whole and centred
    assert case["image"][0, 4:8, :, :].sum() == image.sum()
    restored = crop.inverse(case)
    torch.testing.assert_close(restored["image"].as_tensor(), image)
    torch.testing.assert_close(restored["label"].as_tensor(), label)


def test_square_beyond_the_volume_is_padded_and_empty_volumes_kept():
    image = torch.zeros(1, 6, 16, 4)
    image[0, :, 1:15, 1:3] = 2.0
    case = SquareCropForegroundd("image", source_key="image")({"image": MetaTensor(image)})
    assert tuple(case["image"].shape) == (1, 14, 14, 2) and float(case["image"].sum()) == float(image.sum())
    empty = SquareCropForegroundd("image", source_key="image")({"image": MetaTensor(torch.zeros(1, 6, 8, 4))})
    assert tuple(empty["image"].shape) == (1, 8, 8, 4)


# ------------------------------------------------------------------------------------------------------ CropHeadNeckd
RAS = np.array([[2.0, 0, 0, -40.0], [0, 2.0, 0, -60.0], [0, 0, 3.0, -30.0], [0, 0, 0, 1.0]])  # after Orientationd


def head_neck(shape=(40, 40, 20), body=(slice(5, 25), slice(10, 30), slice(None))):
    ct = torch.full((1, *shape), -1000.0)
    ct[(0, *body)] = 40.0
    pet = torch.zeros((1, *shape))
    return MetaTensor(torch.cat([pet, ct]), affine=torch.as_tensor(RAS))


def world(affine, voxel):
    return (np.asarray(affine) @ np.r_[voxel, 1.0])[:3]


def test_challenge_box_read_in_lps_millimetres():
    image = head_neck()
    # voxels x 10..25, y 5..20, z 4..12 in RAS world mm, then written in LPS as the HECKTOR CSV
    low, high = world(RAS, [10, 5, 4]), world(RAS, [25, 20, 12])
    lps_box = [-high[0], -low[0], -high[1], -low[1], low[2], high[2]]
    case = CropHeadNeckd("image")({"image": image, "modalities": ["pt", "ct"], "bounding_box_mm": lps_box})
    assert tuple(case["image"].shape) == (2, 15, 15, 8)
    np.testing.assert_allclose(world(case["image"].affine, [0, 0, 0]), low)
    ras_box = [low[0], high[0], low[1], high[1], low[2], high[2]]
    same = CropHeadNeckd("image", bounding_box_space="RAS")({"image": image, "bounding_box_mm": ras_box})
    np.testing.assert_allclose(np.asarray(same["image"].affine), np.asarray(case["image"].affine))


def test_label_free_box_centred_on_the_body_and_padded():
    image = head_neck()
    crop = CropHeadNeckd(("image", "label"), box_size_mm=(20.0, 24.0, 300.0))
    label = MetaTensor(torch.zeros(1, 40, 40, 20), affine=torch.as_tensor(RAS))
    case = crop({"image": image, "label": label, "modalities": ["pt", "ct"]})
    cropped = case["image"]
    assert tuple(cropped.shape) == (2, 10, 12, 100)  # the box keeps its size in mm: 40 slices of padding each side
    body_centre = world(RAS, [14.5, 19.5, 9.5])
    np.testing.assert_allclose(world(cropped.affine, [4.5, 5.5, 49.5]), body_centre)
    assert bool((cropped[1, :, :, 40:60] == 40.0).all()) and float(cropped[1, :, :, :40].abs().sum()) == 0.0
    assert tuple(case["label"].shape) == (1, 10, 12, 100)
    restored = crop.inverse(case)
    box = (slice(None), slice(10, 20), slice(14, 26))  # the crop's voxels go back where they came from
    torch.testing.assert_close(restored["image"].as_tensor()[box], image.as_tensor()[box])
    assert tuple(restored["label"].shape) == (1, 40, 40, 20)


def test_pet_locates_the_body_without_ct_and_label_centre():
    pet = torch.zeros(1, 40, 40, 20)
    pet[0, 20:30, 20:30, 5:15] = 2.0
    image = MetaTensor(pet, affine=torch.as_tensor(RAS))
    case = CropHeadNeckd("image", box_size_mm=20.0)({"image": image, "modalities": ["pt"]})
    assert float(case["image"].sum()) == pytest.approx(float(pet[0, 20:30, 20:30, 6:13].sum()))
    label = torch.zeros(1, 40, 40, 20)
    label[0, 2:4, 2:4, 2:4] = 1.0
    by_label = CropHeadNeckd(("image", "label"), box_size_mm=12.0, centre="label")(
        {"image": image, "label": MetaTensor(label, affine=torch.as_tensor(RAS)), "modalities": ["pt"]}
    )
    assert float(by_label["label"].sum()) == 8.0 and tuple(by_label["label"].shape) == (1, 6, 6, 4)


def test_head_neck_errors_name_the_file():
    image = head_neck()
    image.meta["filename_or_obj"] = "CHGJ015_ct.nii.gz"
    with pytest.raises(ValueError, match="CHGJ015_ct.nii.gz: the head-and-neck box .* lies outside the volume"):
        CropHeadNeckd("image")({"image": image, "bounding_box_mm": [500, 644, 500, 644, 500, 644]})
    with pytest.raises(ValueError, match="CHGJ015_ct.nii.gz: centre='label' needs a mask with a tumour voxel"):
        CropHeadNeckd("image", centre="label")({"image": image})
    with pytest.raises(ValueError, match="centre must be"):
        CropHeadNeckd("image", centre="brain")
    with pytest.raises(ValueError, match="bounding_box_space must be"):
        CropHeadNeckd("image", bounding_box_space="voxel")
