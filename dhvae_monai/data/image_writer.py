"""A NIfTI writer for MONAI's ``SaveImage`` / ``SaveImaged`` that never leaves a half-written file."""

from __future__ import annotations

import os

from monai.data import NibabelWriter

from dhvae_monai.utils.atomic import atomic_path

__all__ = ["AtomicNibabelWriter"]


class AtomicNibabelWriter(NibabelWriter):
    """
    MONAI's ``NibabelWriter``, writing each file to a temporary name beside the destination and renaming it when
    complete, so an interrupted inference never leaves a truncated mask where a user (or MONAI Label) expects one.

    Example::

        SaveImaged(keys="pred", output_dir="masks", writer=AtomicNibabelWriter)
    """

    def write(self, filename: str | os.PathLike, verbose: bool = False, **obj_kwargs) -> None:
        with atomic_path(filename) as temporary:
            super().write(str(temporary), verbose=verbose, **obj_kwargs)
