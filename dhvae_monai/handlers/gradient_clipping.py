"""Gradient-norm clipping between a trainer's backward pass and its optimiser step."""

from __future__ import annotations

import torch
from ignite.engine import Engine
from monai.engines.utils import IterationEvents

__all__ = ["GradientNormClipper"]


class GradientNormClipper:
    """
    Clip the global gradient norm of ``network`` to ``max_norm`` after every backward pass of a MONAI
    ``SupervisedTrainer`` (its ``IterationEvents.BACKWARD_COMPLETED`` fires before the optimiser step). The paper's
    segmenter clips at 2.0 (``method.md`` §9).

    Args:
        network: the trained network.
        max_norm: largest allowed norm of all gradients taken together.

    Example::

        GradientNormClipper(network=net, max_norm=2.0).attach(trainer)
    """

    def __init__(self, network: torch.nn.Module, max_norm: float = 2.0) -> None:
        if max_norm <= 0:
            raise ValueError(f"max_norm must be positive, got {max_norm}.")
        self.network = network
        self.max_norm = max_norm

    def attach(self, engine: Engine) -> None:
        """Clip on ``IterationEvents.BACKWARD_COMPLETED``."""
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.max_norm)
