"""Networks of dhvae-monai: the DHVAE generator, its discriminator and the blocks MONAI lacks."""

from __future__ import annotations

from dhvae_monai.networks.blocks import FlowState, HamiltonianFlow, PairLikelihood, tempering_schedule
from dhvae_monai.networks.nets import DHVAE, DHVAEOutput, PairDiscriminator
from dhvae_monai.networks.weights import WeightsMismatchError, load_weights

__all__ = [
    "DHVAE",
    "DHVAEOutput",
    "FlowState",
    "HamiltonianFlow",
    "PairDiscriminator",
    "PairLikelihood",
    "WeightsMismatchError",
    "load_weights",
    "tempering_schedule",
]
