"""What error messages and geometry checks read from a (Meta)Tensor: its source file and its affine."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

__all__ = ["affine_of", "source_of"]


def source_of(tensor: object, default: str = "volume") -> str:
    """The file a MetaTensor was read from (``filename_or_obj``), or ``default`` for other inputs."""
    return str(tensor.meta.get("filename_or_obj", default)) if isinstance(tensor, MetaTensor) else default


def affine_of(tensor: torch.Tensor) -> np.ndarray:
    """The MetaTensor's affine as float64 numpy, identity for a plain tensor."""
    return np.asarray(tensor.affine if isinstance(tensor, MetaTensor) else np.eye(4), dtype=np.float64)
