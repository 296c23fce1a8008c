from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from dhvae_monai.metrics import BatchPooledSoftDiceMetric, batch_pooled_soft_dice
from dhvae_monai.metrics.soft_dice import from_tumour_slices


def _volume(tumour_slices, channels: int = 1, size: int = 4, depth: int = 6, fill: float = 1.0):
    """A ``[C, H, W, D]`` label with a 2 x 2 tumour on the given axial slices, and a probability map equal to
    ``fill`` times the label plus each slice's index / 100 (so slices can be told apart)."""
    label = torch.zeros(channels, size, size, depth)
    for index in tumour_slices:
        label[-1, :2, :2, index] = 1
    probability = fill * label + torch.arange(depth).float() / 100
    return {"prob": probability, "label": label}


def test_keeps_only_tumour_slices_as_slice_batches():
    volume = _volume([1, 4, 5], channels=2, depth=7)
    probabilities, labels = from_tumour_slices()([volume])
    assert len(probabilities) == len(labels) == 1
    assert probabilities[0].shape == labels[0].shape == (3, 2, 4, 4)  # [S, C, H, W]
    torch.testing.assert_close(probabilities[0], volume["prob"][..., [1, 4, 5]].movedim(-1, 0))
    torch.testing.assert_close(labels[0], volume["label"][..., [1, 4, 5]].movedim(-1, 0))
    assert [round(float(p.min()), 2) for p in probabilities[0]] == [0.01, 0.04, 0.05]


def test_a_slice_counts_as_tumour_when_any_channel_has_tumour():
    label = torch.zeros(3, 2, 2, 3)
    label[0, 0, 0, 0] = 1  # only the first region on slice 0
    label[2, 1, 1, 2] = 1  # only the last region on slice 2
    probabilities, labels = from_tumour_slices("p", "y")([{"p": torch.rand(3, 2, 2, 3), "y": label}])
    assert labels[0].shape == (2, 3, 2, 2)
    torch.testing.assert_close(labels[0], label[..., [0, 2]].movedim(-1, 0))


def test_cuts_each_volume_into_batches_of_the_given_size():
    first, second = _volume(range(5), depth=6), _volume([0, 1], depth=3)
    probabilities, labels = from_tumour_slices(slices_per_batch=2)([first, second])
    assert [p.shape[0] for p in probabilities] == [2, 2, 1, 2]  # batches never mix two volumes
    assert [l.shape[0] for l in labels] == [2, 2, 1, 2]
    torch.testing.assert_close(torch.cat(labels[:3]), first["label"][..., :5].movedim(-1, 0))


def test_accepts_meta_tensors():
    volume = _volume([2])
    output = {"prob": MetaTensor(volume["prob"]), "label": MetaTensor(volume["label"])}
    probabilities, labels = from_tumour_slices()([output])
    assert probabilities[0].shape == (1, 1, 4, 4)
    torch.testing.assert_close(torch.as_tensor(labels[0]), volume["label"][..., [2]].movedim(-1, 0))


def test_metric_scores_the_pooled_tumour_slices():
    volume = _volume([0, 3], depth=4, fill=0.5)
    volume["prob"] = 0.5 * volume["label"]  # half confident on the tumour, zero elsewhere
    metric = BatchPooledSoftDiceMetric()
    probabilities, labels = from_tumour_slices()([volume])
    metric(y_pred=probabilities, y=labels)
    # pooled over the 2 tumour slices: 2 * (0.5 * 8) / (0.5 * 8 + 8)
    assert float(metric.aggregate()) == pytest.approx(2 * 4 / 12, abs=1e-5)


def test_a_volume_without_tumour_adds_no_batch_to_the_score():
    # the paper scores tumour slices only: a tumour-free volume must not add a (zero) batch score
    perfect = _volume([1, 2], depth=4)
    perfect["prob"] = perfect["label"].clone()
    empty = _volume([], depth=4)
    probabilities, labels = from_tumour_slices()([perfect, empty])
    assert len(probabilities) == len(labels) == 1, f"got batches of {[p.shape[0] for p in probabilities]} slices"
    metric = BatchPooledSoftDiceMetric()
    metric(y_pred=probabilities, y=labels)
    assert float(metric.aggregate()) == pytest.approx(float(batch_pooled_soft_dice(perfect["label"], perfect["label"])))
