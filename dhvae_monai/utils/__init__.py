from __future__ import annotations

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["atomic_path"]
