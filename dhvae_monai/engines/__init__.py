"""Training workflows on MONAI engines and pytorch-ignite."""

from __future__ import annotations

from dhvae_monai.engines.pair_outputs import from_pair
from dhvae_monai.engines.prepare_batch import PreparePairBatch
from dhvae_monai.engines.trainer import DHVAETrainer, NonFiniteLossError, loss_terms

__all__ = ["DHVAETrainer", "NonFiniteLossError", "PreparePairBatch", "from_pair", "loss_terms"]
