from __future__ import annotations

import pytest
import torch

from dhvae_monai.transforms import ExtractAxialSlicesd, select_tumour_slices, tumour_areas


def volume_with_areas(areas: list[int], size: int = 40) -> torch.Tensor:
    """A [1, size, size, D] mask whose axial slice z holds exactly areas[z] tumour pixels."""
    mask = torch.zeros(1, size, size, len(areas))
    for z, area in enumerate(areas):
        mask[0].view(-1, len(areas))[:area, z] = 1
        mask[0, :, :, z] = mask[0, :, :, z].flatten().sort(descending=True).values.view(size, size)
    return mask


def test_tumour_area_is_the_union_of_mask_channels():
    mask = torch.zeros(2, 4, 4, 2)
    mask[0, :2, :2, 0] = 1  # 4 pixels
    mask[1, 1:3, 1:3, 0] = 1  # 4 pixels, 1 shared
    assert tumour_areas(mask).tolist() == [7, 0]
    with pytest.raises(ValueError, match="binary"):
        tumour_areas(mask * 2)


def test_selection_against_a_hand_checked_case():
    # min 10, bins of 5: [10,15) [15,20) [20,25) [25,30) [30,35); cap 2 per bin, first slices in volume order
    areas = [0, 3, 12, 11, 14, 16, 22, 21, 29, 30, 9, 13]
    selection = select_tumour_slices([torch.tensor(areas)], min_tumour_area=10, area_bin_width=5, slices_per_bin=2)
    assert selection.slice_indices == [2, 3, 5, 6, 7, 8, 9]  # 4 and 11 exceed the cap of bin [10, 15)
    assert selection.bins == [0, 0, 1, 2, 2, 3, 4]  # the largest area (30) opens the last bin, and is kept
    assert selection.areas == [12, 11, 16, 22, 21, 29, 30]


def test_paper_cap_rule_and_global_bins_across_volumes():
    first, second = [12, 13, 14, 0, 0, 0], [11, 20, 0, 0, 0, 0]
    # two bins ([10,15) and [15,20]) over 12 slices: cap 12 // 2 = 6, nothing dropped
    selection = select_tumour_slices([torch.tensor(first), torch.tensor(second)], min_tumour_area=10, area_bin_width=5)
    assert list(zip(selection.volume_indices, selection.slice_indices)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    capped = select_tumour_slices([torch.tensor(first), torch.tensor(second)], 10, 5, slices_per_bin=1)
    assert list(zip(capped.volume_indices, capped.slice_indices)) == [(0, 0), (1, 1)]  # one per global bin


def test_random_order_and_tumour_free_share_are_seeded():
    areas = [torch.tensor([12, 12, 12, 12, 0, 0, 0, 0, 0, 0])]
    first = select_tumour_slices(areas, 10, 5, slices_per_bin=2, order="random", tumour_free_fraction=1.0, seed=3)
    again = select_tumour_slices(areas, 10, 5, slices_per_bin=2, order="random", tumour_free_fraction=1.0, seed=3)
    assert first == again
    tumour = [z for z, b in zip(first.slice_indices, first.bins) if b >= 0]
    empty = [z for z, b in zip(first.slice_indices, first.bins) if b < 0]
    assert len(tumour) == 2 and set(tumour) <= {0, 1, 2, 3}
    assert len(empty) == 2 and set(empty) <= set(range(4, 10))  # as many tumour-free slices as tumour slices
    others = {tuple(select_tumour_slices(areas, 10, 5, slices_per_bin=2, order="random", seed=s).slice_indices) for s in range(6)}
    assert len(others) > 1


def test_empty_selection_says_what_to_change():
    with pytest.raises(ValueError, match=r">= 200 pixels \(the largest is 14\)"):
        select_tumour_slices([torch.tensor([0, 14])], min_tumour_area=200)
    with pytest.raises(ValueError, match="order"):
        select_tumour_slices([torch.tensor([20])], 10, 5, order="largest")


def test_extract_axial_slices_keeps_metadata_and_content():
    image = torch.rand(2, 8, 8, 5)
    label = volume_with_areas([0, 4, 9, 0, 2], size=8)
    slices = ExtractAxialSlicesd(("image", "label"))({"image": image, "label": label, "case_id": "c1", "slice_indices": [1, 2]})
    assert [s["slice_index"] for s in slices] == [1, 2] and [s["tumour_area"] for s in slices] == [4, 9]
    assert all(s["case_id"] == "c1" and "slice_indices" not in s for s in slices)
    torch.testing.assert_close(slices[1]["image"], image[..., 2])
    assert slices[0]["image"].shape == (2, 8, 8) and slices[0]["label"].shape == (1, 8, 8)
    assert len(ExtractAxialSlicesd(("image", "label"))({"image": image, "label": label})) == 5
    with pytest.raises(ValueError, match="differ in shape"):
        ExtractAxialSlicesd(("image", "label"))({"image": image[..., :4], "label": label})
