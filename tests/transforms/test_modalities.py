from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from dhvae_monai.transforms.io import CHANNEL_FILES
from dhvae_monai.transforms.modalities import SelectModalitiesd

NAMES = ["flair", "t1", "t1ce", "t2"]


def four_channels() -> MetaTensor:
    image = MetaTensor(torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 2, 2).clone())
    image.meta["filename_or_obj"] = "case_flair.nii.gz"
    image.meta[CHANNEL_FILES] = [f"case_{name}.nii.gz" for name in NAMES]
    return image


def test_channels_kept_by_name_in_the_requested_order():
    case = SelectModalitiesd("image", ("t2", "flair"))({"image": four_channels(), "modalities": NAMES, "case_id": "c"})
    image = case["image"]
    assert image[:, 0, 0, 0].tolist() == [3.0, 0.0]
    assert case["modalities"] == ["t2", "flair"] and case["case_id"] == "c"
    assert image.meta[CHANNEL_FILES] == ["case_t2.nii.gz", "case_flair.nii.gz"]
    assert image.meta["filename_or_obj"] == "case_flair.nii.gz"


def test_the_same_for_a_4d_file_and_plain_tensors():
    msd = four_channels()
    msd.meta[CHANNEL_FILES] = ["BRATS_001.nii.gz"] * 4  # one 4D file holds every channel
    assert SelectModalitiesd("image", ("t1ce",))({"image": msd, "modalities": NAMES})["image"].meta[CHANNEL_FILES] == [
        "BRATS_001.nii.gz"
    ]
    plain = SelectModalitiesd("image", ("t1",))({"image": torch.arange(4.0).view(4, 1, 1, 1), "modalities": NAMES})
    assert plain["image"].flatten().tolist() == [1.0]


def test_missing_modality_or_names_name_the_file():
    with pytest.raises(ValueError, match=r"case_flair.nii.gz: the case has modalities \[.*'t2'\], not \['pt'\]"):
        SelectModalitiesd("image", ("t1", "pt"))({"image": four_channels(), "modalities": NAMES})
    with pytest.raises(ValueError, match=r"case_flair.nii.gz: 4 channel\(s\) but the case names 2"):
        SelectModalitiesd("image", ("t1",))({"image": four_channels(), "modalities": NAMES[:2]})
    with pytest.raises(ValueError, match="non-empty sequence of names"):
        SelectModalitiesd("image", "flair")
