"""Data: datalists for the real dataset layouts, built-in phantom datasets, cached volumes, 2D slice datasets, synthetic
pairs."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AtomicNibabelWriter",
    "DatalistError",
    "SyntheticPairDataset",
    "TumourSliceDataset",
    "draw_synthetic_pairs",
    "filter_synthetic_pairs",
    "inference_items",
    "load_split",
    "make_datalist",
    "make_phantom_dataset",
    "prepare_datalist",
    "preprocessed_volumes",
    "sample_synthetic_pairs",
    "save_synthetic_pairs",
    "write_datalist",
]

# imported on first use, so `python -m dhvae_monai.data.datalists` / `.phantoms` do not load their module twice
_EXPORTS = {
    "AtomicNibabelWriter": "dhvae_monai.data.image_writer",
    "DatalistError": "dhvae_monai.data.layouts",
    "make_datalist": "dhvae_monai.data.datalists",
    "write_datalist": "dhvae_monai.data.datalists",
    "make_phantom_dataset": "dhvae_monai.data.phantoms",
    "TumourSliceDataset": "dhvae_monai.data.slice_dataset",
    "draw_synthetic_pairs": "dhvae_monai.data.synthetic",
    "filter_synthetic_pairs": "dhvae_monai.data.synthetic",
    "SyntheticPairDataset": "dhvae_monai.data.synthetic_pairs",
    "sample_synthetic_pairs": "dhvae_monai.data.synthetic_pairs",
    "save_synthetic_pairs": "dhvae_monai.data.synthetic_pairs",
    "inference_items": "dhvae_monai.data.prepare",
    "load_split": "dhvae_monai.data.prepare",
    "prepare_datalist": "dhvae_monai.data.prepare",
    "preprocessed_volumes": "dhvae_monai.data.volume_cache",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dhvae_monai.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
