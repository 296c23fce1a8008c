from __future__ import annotations

from dhvae_monai.networks.nets.dhvae import DHVAE, DHVAEOutput, standard_normal_log_prob
from dhvae_monai.networks.nets.discriminator import PairDiscriminator

__all__ = ["DHVAE", "DHVAEOutput", "PairDiscriminator", "standard_normal_log_prob"]
