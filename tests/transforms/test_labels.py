from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from dhvae_monai.transforms.labels import LABEL_CONVENTIONS, REGIONS, TumourRegionsd, unexpected_label_values


def label(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, len(values), 1, 1)


def regions_of(regions, seg, convention=None, item_convention=None):
    data = {"label": seg} if item_convention is None else {"label": seg, "label_convention": item_convention}
    return TumourRegionsd("label", regions=regions, convention=convention)(data)["label"][:, :, 0, 0].tolist()


@pytest.mark.parametrize(
    "convention, values, expected",
    [
        # WT, TC, ET per raw value; TC excludes edema, ET is enhancing only
        ("brats2021", (0, 1, 2, 4), [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]),
        ("brats2023", (0, 1, 2, 3), [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]),
        ("brats2015", (0, 1, 2, 3, 4), [[0, 1, 1, 1, 1], [0, 1, 0, 1, 1], [0, 0, 0, 0, 1]]),
        ("msd", (0, 1, 2, 3), [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]),  # 1 edema, 2 non-enhancing, 3 enhancing
    ],
)
def test_brats_regions_per_convention(convention, values, expected):
    assert regions_of(("WT", "TC", "ET"), label(*values), item_convention=convention) == expected


def test_hecktor_regions_and_binary_masks():
    hecktor2022 = regions_of(("GTVp", "GTVn", "GTV"), label(0, 1, 2), convention="hecktor2022")
    assert hecktor2022 == [[0, 1, 0], [0, 0, 1], [0, 1, 1]]
    assert regions_of(("GTV",), label(0, 1), item_convention="hecktor2021") == [[0, 1]]
    assert regions_of(("WT",), label(0, 1, 255)) == [[0, 1, 1]]  # no convention: binary
    assert regions_of(("GTVp",), label(0, 0.9999999, 1.0000001), convention="hecktor2021") == [[0, 1, 1]]


def test_output_is_binary_float_and_keeps_metadata():
    seg = MetaTensor(label(0, 1, 2, 4), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    seg.meta["filename_or_obj"] = "seg.nii.gz"
    mapped = TumourRegionsd("label", regions=("WT", "ET"))({"label": seg, "label_convention": "brats2021"})["label"]
    assert isinstance(mapped, MetaTensor) and mapped.dtype == torch.float32 and tuple(mapped.shape) == (2, 4, 1, 1)
    assert mapped.meta["filename_or_obj"] == "seg.nii.gz" and float(mapped.affine[2, 2]) == 3.0


def test_errors_name_the_region_convention_and_file():
    seg = MetaTensor(label(0, 1))
    seg.meta["filename_or_obj"] = "case_gtvt.nii.gz"
    with pytest.raises(ValueError, match="case_gtvt.nii.gz: region 'GTVn' cannot be made from the 'hecktor2021'"):
        TumourRegionsd("label", regions=("GTVn",), convention="hecktor2021")({"label": seg})
    with pytest.raises(ValueError, match="single-channel"):
        TumourRegionsd("label")({"label": torch.zeros(2, 3, 3, 3)})
    with pytest.raises(ValueError, match=r"unknown tumour region\(s\) \['NCR'\]"):
        TumourRegionsd("label", regions=("WT", "NCR"))
    with pytest.raises(ValueError, match="unknown label convention 'brats2020'"):
        TumourRegionsd("label", regions=("WT",))({"label": seg, "label_convention": "brats2020"})
    assert TumourRegionsd("label", allow_missing_keys=True)({"case_id": "x"}) == {"case_id": "x"}


def test_unexpected_label_values():
    assert unexpected_label_values(label(0, 1, 2, 3, 4), "brats2021") == [3.0]
    assert unexpected_label_values(label(0, 1, 2, 4), "brats2021") == []
    assert unexpected_label_values(label(0, 2, 1e6), "hecktor2022") == [1e6]
    assert unexpected_label_values(label(0, 0.5, -1, 3), "binary") == [-1.0, 0.5]
    assert unexpected_label_values(label(0, 1.0000001), "hecktor2021") == []  # float storage noise
    assert set(REGIONS) == {"WT", "TC", "ET", "GTV", "GTVp", "GTVn"}
    assert set(LABEL_CONVENTIONS) == {
        "brats2021", "brats2023", "brats2015", "msd", "hecktor2021", "hecktor2022", "binary"
    }
