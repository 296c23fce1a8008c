"""Ignite handler writing a preview grid of prior samples from the generator during training."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from dhvae_monai.visualize.pair_grid import save_pair_grid

__all__ = ["SamplePreviewSaver"]


class SamplePreviewSaver:
    """
    Every ``interval`` epochs, decode ``num_samples`` prior draws of a :class:`~dhvae_monai.networks.nets.DHVAE` and
    save them as a PNG grid (image in grey, mask outlines in colour), ``preview_epoch=<E>.png`` in ``output_dir``.

    The same latent draws are used at every epoch (seeded), so successive previews show how the generator evolves
    rather than sampling noise. Only the process of rank 0 should attach it in distributed training.

    Args:
        network: the DHVAE generator.
        output_dir: folder for the PNG files.
        num_samples: pairs per grid.
        interval: epochs between previews; the last epoch always gets one.
        num_columns: tiles per row.
        seed: seed of the latent draws.

    Example::

        SamplePreviewSaver(network=net, output_dir="runs/previews", interval=5).attach(trainer)
    """

    def __init__(
        self,
        network: torch.nn.Module,
        output_dir: str | os.PathLike,
        num_samples: int = 16,
        interval: int = 1,
        num_columns: int = 8,
        seed: int = 0,
    ) -> None:
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}.")
        self.network = network
        self.output_dir = Path(output_dir)
        self.num_samples = num_samples
        self.interval = interval
        self.num_columns = num_columns
        self.seed = seed
        self._saved_epoch: int | None = None

    def attach(self, engine: Engine) -> None:
        """Save a preview at the end of every ``interval``-th epoch and of the last one."""
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval) | Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> Path:
        """Write the preview of the engine's current epoch (once, even when two events fire) and return its path."""
        path = self.output_dir / f"preview_epoch={engine.state.epoch}.png"
        if self._saved_epoch == engine.state.epoch:
            return path
        network = getattr(self.network, "module", self.network)
        device = network.output_layer.weight.device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        was_training = network.training
        network.eval()
        try:
            pairs = network.sample(self.num_samples, generator=generator)
        finally:
            network.train(was_training)
        save_pair_grid(path, pairs, network.image_channels, num_columns=self.num_columns)
        self._saved_epoch = engine.state.epoch
        return path
