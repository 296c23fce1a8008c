"""Ignite handlers that MONAI does not have."""

from __future__ import annotations

from dhvae_monai.handlers.sample_preview import SamplePreviewSaver

__all__ = ["SamplePreviewSaver"]
