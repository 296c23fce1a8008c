"""Feature vectors from a trained network: the global-average-pooled output of one of its layers."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PooledLayerFeatures"]


class PooledLayerFeatures:
    """
    Feature vectors ``[B, C]`` of images: the output of the layer ``layer`` of ``network``, averaged over its
    spatial dimensions, captured by a forward hook during an eval-mode, no-grad forward pass (the hook is removed
    after each call, the network's mode restored).

    With the trained segmenter (MONAI :class:`~monai.networks.nets.BasicUNet`) and its bottleneck ``"down_4"``
    (``features[4]`` channels, 1024 with the paper's network) these are the offline counterpart of FID's
    Inception features: trained on the same kind of slices, and nothing to download.

    Args:
        network: the feature network, e.g. the trained segmenter.
        layer: name of the submodule in ``network.named_modules()``.

    Raises:
        ValueError: ``network`` has no submodule ``layer`` (the message lists its top-level layers).

    Example::

        features = PooledLayerFeatures(segmenter, "down_4")(images)   # [B, 1024] for the paper's BasicUNet
    """

    def __init__(self, network: nn.Module, layer: str = "down_4") -> None:
        modules = dict(network.named_modules())
        if not layer or layer not in modules:
            raise ValueError(
                f"{type(network).__name__} has no layer {layer!r}; its top-level layers are "
                f"{[name for name, _ in network.named_children()]}."
            )
        self.network = network
        self.layer = layer
        self._module = modules[layer]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """
        Args:
            images: network inputs ``[B, C_in, H, W]`` (moved to the network's device).

        Returns:
            ``[B, C]`` features, on the network's device.

        Raises:
            RuntimeError: the layer did not run exactly once in the forward pass, or its output is not a tensor.
        """
        outputs: list = []
        handle = self._module.register_forward_hook(lambda module, inputs, output: outputs.append(output))
        was_training = self.network.training
        self.network.eval()
        try:
            self.network(images.to(next(self.network.parameters()).device))
        finally:
            handle.remove()
            self.network.train(was_training)
        if len(outputs) != 1 or not isinstance(outputs[0], torch.Tensor):
            raise RuntimeError(
                f"layer {self.layer!r} of {type(self.network).__name__} ran {len(outputs)} times in a forward pass "
                "(expected once, returning a tensor): choose another layer."
            )
        output = outputs[0]
        return output.flatten(2).mean(2) if output.ndim > 2 else output
