"""dhvae-monai: a discriminative Hamiltonian VAE for MONAI.

Learns the joint distribution of 2D slices and their tumour masks, samples synthetic image + mask pairs
for data-scarce segmentation, and segments 3D volumes slice by slice.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
