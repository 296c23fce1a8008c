"""Data: datalists for the real dataset layouts, built-in phantom datasets, 2D slice datasets, synthetic pairs."""

from __future__ import annotations

from dhvae_monai.data.datalists import DatalistError, make_datalist, write_datalist
from dhvae_monai.data.phantoms import make_phantom_dataset
from dhvae_monai.data.slice_dataset import TumourSliceDataset
from dhvae_monai.data.synthetic import filter_synthetic_pairs

__all__ = [
    "DatalistError",
    "TumourSliceDataset",
    "filter_synthetic_pairs",
    "make_datalist",
    "make_phantom_dataset",
    "write_datalist",
]
