from __future__ import annotations

import pytest
import torch
from monai.networks.nets import BasicUNet
from torch import nn

from dhvae_monai.metrics import PooledLayerFeatures

FEATURES = (4, 8, 8, 16, 12, 4)


def _segmenter() -> BasicUNet:
    torch.manual_seed(0)
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=FEATURES, norm="batch")


def test_bottleneck_features_are_the_pooled_output_of_down_4_in_eval_mode():
    segmenter = _segmenter().train()
    images = torch.rand(3, 1, 32, 32)
    features = PooledLayerFeatures(segmenter, "down_4")(images)
    assert features.shape == (3, FEATURES[4])
    segmenter.eval()
    with torch.no_grad():
        bottleneck = images
        for name in ("conv_0", "down_1", "down_2", "down_3", "down_4"):
            bottleneck = getattr(segmenter, name)(bottleneck)
    torch.testing.assert_close(features, bottleneck.mean(dim=(2, 3)))
    # per image: batch statistics of BatchNorm in training mode would mix the images
    torch.testing.assert_close(PooledLayerFeatures(segmenter)(images[:1]), features[:1])


def test_leaves_no_hook_and_restores_the_mode():
    segmenter = _segmenter().train()
    extract = PooledLayerFeatures(segmenter, "down_1.convs")
    assert extract(torch.rand(2, 1, 16, 16)).shape == (2, FEATURES[1])
    assert segmenter.training and not segmenter.down_1.convs._forward_hooks


def test_unknown_layer_and_a_layer_run_twice_are_named():
    with pytest.raises(ValueError, match=r"BasicUNet has no layer 'bottleneck'; its top-level layers are \['conv_0'"):
        PooledLayerFeatures(_segmenter(), "bottleneck")
    with pytest.raises(ValueError, match="has no layer ''"):
        PooledLayerFeatures(_segmenter(), "")
    shared = nn.Conv2d(1, 1, 1)
    with pytest.raises(RuntimeError, match="ran 2 times"):
        PooledLayerFeatures(nn.Sequential(shared, shared), "0")(torch.rand(1, 1, 4, 4))
