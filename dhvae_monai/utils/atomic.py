"""Atomic file writes: a reader never sees a half-written output, and an interrupted write leaves no debris."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """
    Yield a temporary path beside ``path``; on success it replaces ``path`` in one ``os.replace``.

    The temporary file keeps ``path``'s suffixes (``.nii.gz``, ``.png``) so writers that choose a format from the
    name still work. If the block raises, the temporary file is removed and ``path`` is left as it was. The file
    gets the permissions of the one it replaces, or those of a newly created file, so outputs stay readable by
    whoever could read them before.

    Args:
        path: final destination; its folder is created if needed.

    Yields:
        the temporary path to write to.

    Example::

        with atomic_path("out/preview.png") as tmp:
            image.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    temporary_path = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp{suffix}"
    # created as open() creates any file, under the umask (mkstemp would make it private, 0o600); "x": never reused
    with open(temporary_path, "x"):
        pass
    try:
        yield temporary_path
        if path.exists():
            shutil.copymode(path, temporary_path)
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)
