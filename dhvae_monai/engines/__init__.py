"""Training workflows on MONAI engines and pytorch-ignite."""

from __future__ import annotations

from dhvae_monai.engines.prepare_batch import PreparePairBatch
from dhvae_monai.engines.trainer import DHVAETrainer, NonFiniteLossError, loss_terms

__all__ = ["DHVAETrainer", "NonFiniteLossError", "PreparePairBatch", "loss_terms"]
