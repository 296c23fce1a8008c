"""Preprocessed 3D volumes, computed once and held in memory, optionally also kept on disk for later runs."""

from __future__ import annotations

import os
from typing import Callable, Sequence

from monai.data import CacheDataset, PersistentDataset
from monai.data.utils import pickle_hashing

__all__ = ["preprocessed_volumes", "transform_error"]


def preprocessed_volumes(
    data: Sequence[dict],
    transform: Callable | None,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> CacheDataset:
    """
    Datalist items through a deterministic volume ``transform``, each computed once and held in memory.

    With ``cache_dir``, every preprocessed volume is also written there (MONAI's ``PersistentDataset``, keyed by the
    item *and* the transform's parameters, written atomically), so later runs and other stages with the same
    preprocessing read it from disk instead of recomputing it; a changed setting (e.g. ``image_size``) gets new
    cache files instead of stale ones. The returned dataset never copies a volume on access, so 2D slice datasets
    can keep views into it.

    Args:
        data: datalist items (e.g. from :func:`~dhvae_monai.data.load_split`).
        transform: the volume preprocessing (e.g. :func:`~dhvae_monai.transforms.brats_volume_transforms`); it must be
            deterministic when ``cache_dir`` is set.
        cache_dir: folder of the disk cache, shared by every run that preprocesses the same way; None: memory only.
        num_workers: processes preprocessing the volumes.
        progress: show a progress bar.

    Returns:
        a ``CacheDataset`` of preprocessed volume dictionaries.

    Raises:
        ValueError, FileNotFoundError: a bad input file met by ``transform``, with the transform's own message
            (naming the file and the problem) rather than MONAI's ``applying transform`` wrapper.

    Example::

        volumes = preprocessed_volumes(load_split(datalist, "test"), brats_volume_transforms(), cache_dir="runs/cache")
    """
    if cache_dir is None:
        source, transform_in_memory = list(data), transform
    else:
        # the disk layer preprocesses; the memory layer above it only holds what the disk layer returns
        source = PersistentDataset(list(data), transform, cache_dir=cache_dir, hash_transform=pickle_hashing)
        transform_in_memory = None
    try:
        return CacheDataset(
            source, transform=transform_in_memory, cache_rate=1.0, num_workers=num_workers, progress=progress
        )
    except RuntimeError as error:
        cause = transform_error(error)
        if isinstance(cause, (ValueError, FileNotFoundError)):
            raise type(cause)(str(cause)) from error
        raise


def transform_error(error: BaseException) -> BaseException:
    """
    The exception a transform raised, below MONAI's ``applying transform`` wrappers.

    Args:
        error: an exception raised while a MONAI ``Compose`` or dataset applied transforms.

    Returns:
        the innermost exception that is not one of MONAI's wrappers (``error`` itself when it is not wrapped).

    Example::

        try:
            volumes = CacheDataset(items, transform)
        except RuntimeError as error:
            print(transform_error(error))  # e.g. "case_001_flair.nii.gz: 3 NaN voxels"
    """
    while isinstance(error, RuntimeError) and str(error).startswith("applying transform") and error.__cause__:
        error = error.__cause__
    return error
