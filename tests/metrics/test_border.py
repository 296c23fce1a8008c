from __future__ import annotations

import pytest
import torch

from dhvae_monai.metrics import tumour_on_border


def test_flags_masks_with_tumour_in_the_outer_frame_only():
    masks = torch.zeros(5, 1, 8, 8)
    masks[0, 0, 3:5, 3:5] = 1  # central tumour
    masks[1, 0, 0, 4] = 1  # top row
    masks[2, 0, 5, 7] = 1  # right column
    masks[3, 0, 1, 1] = 1  # one pixel inside the frame
    masks[4, 0, 7, 0] = 0.4  # below the threshold
    assert tumour_on_border(masks).tolist() == [False, True, True, False, False]
    assert tumour_on_border(masks, border_width=2).tolist() == [False, True, True, True, False]
    assert tumour_on_border(masks, mask_threshold=0.3).tolist() == [False, True, True, False, True]


def test_any_mask_channel_counts():
    masks = torch.zeros(2, 3, 6, 6)
    masks[:, :, 2:4, 2:4] = 1
    masks[1, 2, 5, 5] = 1  # the last region only
    assert tumour_on_border(masks).tolist() == [False, True]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"expected masks \[N, C_mask, H, W\]"):
        tumour_on_border(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="border_width must be in"):
        tumour_on_border(torch.zeros(1, 1, 8, 8), border_width=4)
    with pytest.raises(ValueError, match="border_width must be in"):
        tumour_on_border(torch.zeros(1, 1, 8, 8), border_width=0)
