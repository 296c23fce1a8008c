from __future__ import annotations

from dhvae_monai.networks.blocks.hamiltonian_flow import FlowState, HamiltonianFlow, tempering_schedule
from dhvae_monai.networks.blocks.pair_likelihood import PairLikelihood

__all__ = ["FlowState", "HamiltonianFlow", "PairLikelihood", "tempering_schedule"]
