"""Atomic file writes: a reader never sees a half-written output, and an interrupted write leaves no debris."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path"]


def _new_file_mode() -> int:
    """The mode ``open`` gives a new file under the process's umask (``mkstemp`` would leave it private, 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        mode = path.stat().st_mode if path.exists() else _new_file_mode()
        os.chmod(temporary_path, mode & 0o7777)
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)
