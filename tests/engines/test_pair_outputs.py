from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.handlers import IgniteMetricHandler
from monai.metrics import DiceMetric

from dhvae_monai.engines.pair_outputs import PAIR_PARTS, from_pair


def _output(image_channels: int = 2, mask_channels: int = 2):
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(3, image_channels + mask_channels, 4, 4, generator=generator, dtype=torch.float64)
    label = torch.rand(3, image_channels + mask_channels, 4, 4, generator=generator, dtype=torch.float64).round()
    return {"pred": pred, "label": label}


def test_image_part_is_the_leading_channels_unchanged():
    output = _output(image_channels=2)
    pred, label = from_pair("image", image_channels=2)(output)
    assert pred.shape == label.shape == (3, 2, 4, 4)
    torch.testing.assert_close(pred, output["pred"][:, :2])
    torch.testing.assert_close(label, output["label"][:, :2])


def test_mask_part_is_the_remaining_channels_binarised_on_request():
    output = _output(image_channels=2, mask_channels=2)
    original = output["pred"].clone()
    pred, label = from_pair("mask", image_channels=2)(output)
    torch.testing.assert_close(pred, output["pred"][:, 2:])  # continuous without a threshold
    pred, label = from_pair("mask", image_channels=2, mask_threshold=0.7)(output)
    assert pred.dtype == torch.float64 and set(pred.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(pred, (output["pred"][:, 2:] > 0.7).double())
    torch.testing.assert_close(label, output["label"][:, 2:])  # the ground truth is never thresholded
    torch.testing.assert_close(output["pred"], original)  # the engine's output is not binarised in place


def test_default_is_one_image_channel():
    output = _output(image_channels=1, mask_channels=1)
    image, _ = from_pair("image")(output)
    mask, _ = from_pair("mask")(output)
    assert image.shape == mask.shape == (3, 1, 4, 4)
    torch.testing.assert_close(mask, output["pred"][:, 1:])


def test_unknown_part_is_refused():
    assert PAIR_PARTS == ("image", "mask")
    with pytest.raises(ValueError, match=r"part must be one of \('image', 'mask'\), got 'label'"):
        from_pair("label")


def test_feeds_a_monai_dice_metric_handler():
    pred = torch.zeros(2, 2, 4, 4)
    label = torch.zeros(2, 2, 4, 4)
    pred[:, 0], label[:, 0] = 0.9, 0.1  # images differ completely: would spoil the Dice if read
    label[:, 1, :2] = 1
    pred[:, 1, :2] = 0.6  # above the threshold: a perfect mask once binarised
    evaluator = Engine(lambda engine, batch: {"pred": pred, "label": label})
    IgniteMetricHandler(DiceMetric(include_background=True), output_transform=from_pair("mask", 1, 0.5)).attach(
        evaluator, "dice"
    )
    evaluator.run([0])
    assert evaluator.state.metrics["dice"] == pytest.approx(1.0)
